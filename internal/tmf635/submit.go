package tmf635

import (
	"context"
	"sync"
	"time"
)

// SubmitStore takes posted usages into their clients' api submissions in
// one transaction (tmfstore.Store implements it).
type SubmitStore interface {
	Submit(ctx context.Context, subs []*Submission, now time.Time) ([]Record, error)
}

// Submitter commits posted usages in groups: while one transaction runs,
// the requests that arrive wait and go together in the next, so that many
// concurrent POSTs cost a few commits rather than one each. Each caller
// gets its own usage, or the error of its group's transaction.
type Submitter struct {
	Store SubmitStore
	// MaxGroup bounds a group; 0 means 500.
	MaxGroup int

	once sync.Once
	reqs chan *pending
}

type pending struct {
	sub  *Submission
	done chan result
}

type result struct {
	rec Record
	err error
}

// Submit takes one usage; it returns once the usage is committed.
func (s *Submitter) Submit(ctx context.Context, sub *Submission) (Record, error) {
	s.once.Do(func() {
		s.reqs = make(chan *pending, 4096)
		go s.loop()
	})
	p := &pending{sub: sub, done: make(chan result, 1)}
	select {
	case s.reqs <- p:
	case <-ctx.Done():
		return Record{}, ctx.Err()
	}
	// Once queued the usage is committed or refused whatever the caller
	// does; waiting for the answer is all that is left.
	r := <-p.done
	return r.rec, r.err
}

func (s *Submitter) loop() {
	max := s.MaxGroup
	if max <= 0 {
		max = 500
	}
	for first := range s.reqs {
		group := []*pending{first}
	more:
		for len(group) < max {
			select {
			case p := <-s.reqs:
				group = append(group, p)
			default:
				break more
			}
		}
		subs := make([]*Submission, len(group))
		for i, p := range group {
			subs[i] = p.sub
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		recs, err := s.Store.Submit(ctx, subs, time.Now())
		cancel()
		for i, p := range group {
			if err != nil {
				p.done <- result{err: err}
				continue
			}
			p.done <- result{rec: recs[i]}
		}
	}
}
