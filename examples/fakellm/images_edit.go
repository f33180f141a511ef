package fakellm

import (
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
)

// Limits of an edit upload, as the OpenAI Images API states them: up to 16
// images of at most 50 MB each for GPT image models (4 MB for DALL·E 2).
const (
	MaxEditImages        = 16
	MaxEditImageBytes    = 50 << 20
	maxLegacyEditBytes   = 4 << 20
	maxEditFieldBytes    = 64 << 10
	sniffBytes           = 512
	unsupportedMimetype  = "unsupported_file_mimetype"
	imageTooLarge        = "image_too_large"
	missingRequiredParam = "missing_required_parameter"
)

// editUpload is what serveImageEdits read of a multipart edit.
type editUpload struct {
	fields map[string]string
	images int
	// largest is the size of the largest image file.
	largest int64
}

// serveImageEdits answers POST /v1/images/edits as the OpenAI Images API
// does: a multipart/form-data body with one to MaxEditImages image files
// (image or image[]: PNG, JPEG or WebP, each at most MaxEditImageBytes, 4
// MB for dall-e models), an optional PNG mask, a prompt and a model; then
// the answer of a generation (answerImages) with image_edit stream events.
// Errors have OpenAI's shape; failure headers apply as elsewhere.
func (s *Server) serveImageEdits(w http.ResponseWriter, r *http.Request) {
	s.countRequest()
	up, e := readEditUpload(r)
	s.recordBody(up.fields["model"], 0)
	sc, err := parseScenario(r.Header, s.opts)
	if err != nil {
		writeError(w, http.StatusBadRequest, apiError{Message: err.Error(), Type: typeInvalidRequest})
		return
	}
	if s.injectFailure(w, sc.fail) {
		return
	}
	if e != nil {
		writeError(w, http.StatusBadRequest, *e)
		return
	}
	w.Header().Set(HeaderReceivedModel, up.fields["model"])
	req, e := editRequest(up)
	if e != nil {
		writeError(w, http.StatusBadRequest, *e)
		return
	}
	s.answerImages(w, r, req, sc, "image_edit")
}

// readEditUpload reads and checks the upload's parts; a non-nil error is
// the 400 to answer.
func readEditUpload(r *http.Request) (editUpload, *apiError) {
	up := editUpload{fields: map[string]string{}}
	bad := func(param, code, msg string) (editUpload, *apiError) {
		e := apiError{Message: msg, Type: typeInvalidRequest, Code: ptr(code)}
		if param != "" {
			e.Param = ptr(param)
		}
		return up, &e
	}
	ct := r.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return bad("", "invalid_content_type", fmt.Sprintf("Invalid Content-Type header (%s), expected multipart/form-data. (HINT: If you're using curl, you can pass -F for each field.)", clipValue(ct)))
	}
	mr := multipart.NewReader(r.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return bad("", "invalid_multipart", "Could not parse multipart form")
		}
		switch name := p.FormName(); {
		case p.FileName() != "" || name == "image" || name == "image[]" || name == "mask":
			if e := up.checkFile(p, name); e != nil {
				return up, e
			}
		default:
			v, err := io.ReadAll(io.LimitReader(p, maxEditFieldBytes))
			if err != nil {
				return bad("", "invalid_multipart", "Could not parse multipart form")
			}
			up.fields[name] = string(v)
		}
	}
	switch {
	case up.images == 0:
		return bad("image", missingRequiredParam, "Missing required parameter: 'image'.")
	case up.images > MaxEditImages:
		return bad("image", "too_many_images", fmt.Sprintf("Invalid 'image': too many images. Expected at most %d, but got %d.", MaxEditImages, up.images))
	case up.fields["model"] == "":
		return bad("model", missingRequiredParam, "you must provide a model parameter")
	}
	return up, nil
}

// checkFile reads one file part: its type sniffed from its first bytes,
// its size counted against the cap, the rest discarded.
func (up *editUpload) checkFile(p *multipart.Part, name string) *apiError {
	param, want := "image", []string{"image/png", "image/jpeg", "image/webp"}
	if name == "mask" {
		param, want = "mask", []string{"image/png"}
	} else {
		up.images++
	}
	head := make([]byte, sniffBytes)
	n, err := io.ReadFull(p, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return &apiError{Message: "Could not parse multipart form", Type: typeInvalidRequest, Code: ptr("invalid_multipart")}
	}
	mimetype := http.DetectContentType(head[:n])
	ok := false
	for _, w := range want {
		ok = ok || w == mimetype
	}
	if !ok {
		return &apiError{Message: fmt.Sprintf("Invalid file '%s': unsupported mimetype ('%s'). Supported file formats are %s.", param, mimetype, quoteList(want)),
			Type: typeInvalidRequest, Param: ptr(param), Code: ptr(unsupportedMimetype)}
	}
	rest, err := io.Copy(io.Discard, io.LimitReader(p, MaxEditImageBytes+1))
	if err != nil {
		return &apiError{Message: "Could not parse multipart form", Type: typeInvalidRequest, Code: ptr("invalid_multipart")}
	}
	if int64(n)+rest > MaxEditImageBytes {
		return &apiError{Message: fmt.Sprintf("Invalid file '%s': the file is larger than %d MB.", param, MaxEditImageBytes>>20),
			Type: typeInvalidRequest, Param: ptr(param), Code: ptr(imageTooLarge)}
	}
	if param == "image" {
		up.largest = max(up.largest, int64(n)+rest)
	}
	return nil
}

// editRequest reads the edit's fields as a generation's request; dall-e
// models take images of at most 4 MB.
func editRequest(up editUpload) (imageRequest, *apiError) {
	f := up.fields
	req := imageRequest{Model: f["model"], Size: f["size"], Quality: f["quality"], ResponseFormat: f["response_format"]}
	if v, ok := f["prompt"]; ok {
		req.Prompt = &v
	}
	for _, x := range []struct {
		name string
		to   **int
	}{{"n", &req.N}, {"partial_images", &req.PartialImages}} {
		v, ok := f[x.name]
		if !ok {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return req, &apiError{Message: fmt.Sprintf("Invalid type for '%s': expected an integer, but got a string instead.", x.name),
				Type: typeInvalidRequest, Param: ptr(x.name), Code: ptr("invalid_type")}
		}
		*x.to = &n
	}
	req.Stream = f["stream"] == "true"
	if strings.HasPrefix(req.Model, "dall-e") && up.largest > maxLegacyEditBytes {
		return req, &apiError{Message: fmt.Sprintf("Invalid file 'image': the file is larger than %d MB.", maxLegacyEditBytes>>20),
			Type: typeInvalidRequest, Param: ptr("image"), Code: ptr(imageTooLarge)}
	}
	return req, nil
}
