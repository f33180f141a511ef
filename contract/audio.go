package contract

// UploadPaths are the endpoints whose bodies are multipart/form-data file
// uploads. Their bodies are capped by gateway.max_upload_bytes instead of
// gateway.max_request_body_bytes: Envoy's routes (xds, the body buffer
// limit and the 413 message) and the ext_proc (extproc, the same cap and
// the multipart reader) both read this list. Read-only.
var UploadPaths = []string{"/v1/audio/transcriptions", "/v1/audio/translations", "/v1/images/edits"}

// IsUploadPath reports whether path (without its query) is in UploadPaths.
func IsUploadPath(path string) bool {
	for _, p := range UploadPaths {
		if p == path {
			return true
		}
	}
	return false
}

// MetaAudioSeconds is the dynamic metadata key (under MetadataNamespace)
// of the input audio's length an Audio API answer reported instead of
// tokens (whisper-1's {"type": "duration", "seconds"}); the access log's
// audio_seconds.
const MetaAudioSeconds = "audio_seconds"
