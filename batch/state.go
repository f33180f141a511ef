package batch

import "fmt"

// Status is a batch's place in its life, OpenAI's names.
type Status string

// The statuses: validating → in_progress → finalizing → completed; failed
// (the input did not validate); in_progress → cancelling → cancelled;
// in_progress → expired (the completion window passed).
const (
	Validating Status = "validating"
	InProgress Status = "in_progress"
	Finalizing Status = "finalizing"
	Completed  Status = "completed"
	Failed     Status = "failed"
	Cancelling Status = "cancelling"
	Cancelled  Status = "cancelled"
	Expired    Status = "expired"
)

// next lists the statuses each status may move to.
var next = map[Status][]Status{
	Validating: {InProgress, Failed, Cancelling},
	InProgress: {Finalizing, Cancelling, Expired},
	Finalizing: {Completed},
	Cancelling: {Cancelled},
}

// Terminal reports whether s is final.
func (s Status) Terminal() bool { return len(next[s]) == 0 }

// Counts are a batch's request_counts.
type Counts struct {
	Total     int `json:"total"`
	Completed int `json:"completed"`
	Failed    int `json:"failed"`
}

// Batch is a batch object as OpenAI returns it, plus its owner (never
// sent to clients).
type Batch struct {
	ID               string            `json:"id"`
	Object           string            `json:"object"`
	Endpoint         string            `json:"endpoint"`
	Errors           *ErrorList        `json:"errors"`
	InputFileID      string            `json:"input_file_id"`
	CompletionWindow string            `json:"completion_window"`
	Status           Status            `json:"status"`
	OutputFileID     *string           `json:"output_file_id"`
	ErrorFileID      *string           `json:"error_file_id"`
	CreatedAt        int64             `json:"created_at"`
	InProgressAt     *int64            `json:"in_progress_at"`
	ExpiresAt        *int64            `json:"expires_at"`
	FinalizingAt     *int64            `json:"finalizing_at"`
	CompletedAt      *int64            `json:"completed_at"`
	FailedAt         *int64            `json:"failed_at"`
	ExpiredAt        *int64            `json:"expired_at"`
	CancellingAt     *int64            `json:"cancelling_at"`
	CancelledAt      *int64            `json:"cancelled_at"`
	RequestCounts    Counts            `json:"request_counts"`
	Metadata         map[string]string `json:"metadata"`
	// Tenant owns the batch; only it sees the batch.
	Tenant string `json:"-"`
}

// ErrorList is a failed batch's validation errors.
type ErrorList struct {
	Object string      `json:"object"`
	Data   []LineError `json:"data"`
}

// LineError is one validation error.
type LineError struct {
	Code    string  `json:"code"`
	Message string  `json:"message"`
	Param   *string `json:"param"`
	Line    *int    `json:"line"`
}

// moveTo changes b's status to s at unix time now, stamping the matching
// timestamp; a move the life cycle does not allow is an error.
func (b *Batch) moveTo(s Status, now int64) error {
	ok := false
	for _, n := range next[b.Status] {
		ok = ok || n == s
	}
	if !ok {
		return fmt.Errorf("cannot move a batch from %s to %s", b.Status, s)
	}
	b.Status = s
	at := map[Status]**int64{InProgress: &b.InProgressAt, Finalizing: &b.FinalizingAt, Completed: &b.CompletedAt,
		Failed: &b.FailedAt, Cancelling: &b.CancellingAt, Cancelled: &b.CancelledAt, Expired: &b.ExpiredAt}[s]
	*at = &now
	return nil
}
