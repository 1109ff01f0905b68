package mursync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Sender is the sync service: it sends one batch from the batches topic
// to the core and applies the answer. It is safe for concurrent use, one
// batch per call; batches of several clients and partitions run side by
// side.
type Sender struct {
	Store    SendStore
	Core     Core
	Settings SettingsSource
	Logger   *slog.Logger
	// Now stamps answers; nil means time.Now.
	Now func() time.Time
}

func (s *Sender) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Sender) log() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// Handle sends the batch m and returns its result, to be published on the
// results topic. A batch that has its answer already (the message came
// again after a crash) is not sent again: its stored result is returned
// with Redelivered set. An error means nothing was marked and the
// message must be delivered again later (the context ended, the
// database failed); ErrUnknownBatch means the message names no batch
// and can only be dropped.
func (s *Sender) Handle(ctx context.Context, m BatchMessage) (Result, error) {
	info, err := s.Store.BeginSend(ctx, m.BatchID)
	if err != nil {
		return Result{}, err
	}
	if info.Status.Answered() {
		r, err := s.Store.Result(ctx, m.BatchID)
		r.Redelivered = true
		return r, err
	}
	if m.Omitted {
		if m.Records, err = s.Store.BatchRecords(ctx, m.BatchID); err != nil {
			return Result{}, fmt.Errorf("batch %s: read its records: %w", m.BatchID, err)
		}
	}
	var call *CallError
	var ans Answer
	if info.Client != m.Client || info.Records != len(m.Records) {
		// The message is not the batch the database holds: send nothing
		// that could not be marked exactly.
		call = &CallError{Failure: FailInvalid, Message: fmt.Sprintf(
			"the message holds %d records of client %q; the database has %d of client %q for this batch",
			len(m.Records), m.Client, info.Records, info.Client)}
	} else {
		set, err := s.Settings.MURSync(ctx)
		if err != nil {
			return Result{}, err
		}
		ans, err = s.Core.Send(ctx, Call{Client: m.Client, BatchID: m.BatchID, Records: m.Records, Settings: set})
		if err != nil && !errors.As(err, &call) {
			return Result{}, fmt.Errorf("batch %s: %w", m.BatchID, err)
		}
	}
	o := Decide(m, ans, call, s.now())
	r, err := s.Store.Answer(ctx, o)
	if errors.Is(err, ErrAnswered) {
		// Another consumer answered it meanwhile (a rebalance); the core
		// replaced what it had, so nothing was billed twice.
		r, err := s.Store.Result(ctx, m.BatchID)
		r.Redelivered = true
		return r, err
	}
	if err != nil {
		return Result{}, fmt.Errorf("batch %s: mark the answer: %w", m.BatchID, err)
	}
	if o.Status == Failed {
		s.log().Warn("sync batch failed as a whole", "batch", m.BatchID, "client", m.Client,
			"failure", o.Call.Failure, "error_code", o.Call.Code, "error", o.Call.Message, "records", len(m.Records))
	}
	return r, nil
}

// Decide says what an answer means for the batch: with call set, the
// whole batch failed for that reason; otherwise every record is synced
// except those the core refused, which fail with its code and message.
// Refusals of ids the batch does not hold are not the batch's business
// and are left out.
func Decide(m BatchMessage, ans Answer, call *CallError, at time.Time) Outcome {
	o := Outcome{BatchID: m.BatchID, At: at, Attempts: ans.Attempts}
	if call != nil {
		o.Status, o.Call, o.Attempts = Failed, call, call.Attempts
		return o
	}
	o.Status = Done
	if len(ans.Refused) > 0 {
		o.Refused = make(map[string]RecordError, len(ans.Refused))
		for i := range m.Records {
			if e, ok := ans.Refused[m.Records[i].ID]; ok {
				o.Refused[m.Records[i].ID] = e
			}
		}
	}
	return o
}

// MURError is the text a MUR's sync_error gets when its record failed.
func MURError(o Outcome, e RecordError) string {
	if o.Call != nil {
		return fmt.Sprintf("batch %s failed (%s): %s", o.BatchID, o.Call.Failure, callText(o.Call))
	}
	return fmt.Sprintf("record_error_code %d: %s", e.Code, e.Message)
}

func callText(c *CallError) string {
	if c.Code != 0 {
		return fmt.Sprintf("error_code %d: %s", c.Code, c.Message)
	}
	return c.Message
}
