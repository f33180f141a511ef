package batch

import (
	"bytes"
	"encoding/json"
)

// finish ends batch id: cancelling → cancelled, an in_progress batch past
// its expiry → expired (its lines without a result get a batch_expired
// error line), else in_progress → finalizing → completed. The output and
// error files hold the recorded results in input order; a file with no
// line is not created (its id stays null).
func (r *Runner) finish(id string) {
	b, err := r.Store.Batch("", id)
	if err != nil || b.Status.Terminal() {
		return
	}
	lines, done, err := r.input(b)
	if err != nil {
		r.Log.Warn("batch: cannot read its input to finish it", "batch", id, "error", err.Error())
		return
	}
	expired := b.Status == InProgress && r.Now().Unix() >= *b.ExpiresAt
	final := Completed
	switch {
	case b.Status == Cancelling:
		final = Cancelled
	case expired:
		final = Expired
	default:
		if _, err := r.update(id, func(b *Batch) error { return b.moveTo(Finalizing, r.Now().Unix()) }); err != nil && b.Status != Finalizing {
			return
		}
	}
	var out, errs bytes.Buffer
	counts := Counts{Total: len(lines)}
	for _, l := range lines {
		res, ok := done[l.CustomID]
		switch {
		case ok && res.OK:
			counts.Completed++
			out.Write(append(res.Line, '\n'))
		case ok:
			counts.Failed++
			errs.Write(append(res.Line, '\n'))
		case expired:
			counts.Failed++
			data, _ := json.Marshal(outputLine{ID: newID("batch_req_"), CustomID: l.CustomID,
				Error: &lineError{Code: "batch_expired", Message: "This request could not be executed before the completion window expired."}})
			errs.Write(append(data, '\n'))
		}
	}
	outID, err1 := r.resultFile(b, "_output.jsonl", out.Bytes())
	errID, err2 := r.resultFile(b, "_error.jsonl", errs.Bytes())
	if err1 != nil || err2 != nil {
		r.Log.Warn("batch: cannot write its result files", "batch", id)
		return
	}
	_, err = r.update(id, func(b *Batch) error {
		b.OutputFileID, b.ErrorFileID, b.RequestCounts = outID, errID, counts
		return b.moveTo(final, r.Now().Unix())
	})
	if err != nil {
		r.Log.Warn("batch: cannot finish it", "batch", id, "error", err.Error())
	}
}

// resultFile stores data as b's output or error file; nil when empty.
func (r *Runner) resultFile(b *Batch, suffix string, data []byte) (*string, error) {
	if len(data) == 0 {
		return nil, nil
	}
	purpose := "batch_output"
	f, err := r.Store.AddFile(File{CreatedAt: r.Now().Unix(), Filename: b.ID + suffix, Purpose: purpose, Tenant: b.Tenant}, data)
	if err != nil {
		return nil, err
	}
	return &f.ID, nil
}
