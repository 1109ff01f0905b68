package rules

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/apd/v3"

	"vivace.dev/vivace/internal/codes"
	"vivace.dev/vivace/internal/usage"
)

// What a correlation group that times out becomes.
const (
	TimeoutEmit = "emit" // merged from what it has, marked incomplete
	TimeoutFail = "fail" // every record an exception MEDIATION_FAILED
)

// Outcome is what became of a correlation group: the store records it
// with the group when the group is emitted.
type Outcome string

// The outcomes of a correlation group; the only place they are defined.
const (
	OutcomeOpen       Outcome = ""           // keep the group open
	OutcomeComplete   Outcome = "complete"   // merged from a complete group
	OutcomeIncomplete Outcome = "incomplete" // merged from a timed-out group, marked
	OutcomeFailed     Outcome = "failed"     // every record fails
)

// The field and value that mark a record merged from a timed-out group.
const (
	IncompleteField = "correlation"
	IncompleteValue = "incomplete"
)

// Correlation joins partial records (a call's start, intermediate and stop
// records, say) that share a key into one record, once the group is
// complete or its window has passed.
type Correlation struct {
	// Window is how long a group stays open after its first record
	// arrived.
	Window time.Duration
	// OnTimeout is TimeoutEmit or TimeoutFail.
	OnTimeout string
	// KeyName names the key in messages ("call_id"); "key" when empty.
	KeyName string
}

// Validate joins every problem of the settings.
func (c Correlation) Validate() error {
	var errs []error
	if c.Window <= 0 {
		errs = append(errs, fmt.Errorf("window: %s; a group needs a positive window", c.Window))
	}
	if c.OnTimeout != TimeoutEmit && c.OnTimeout != TimeoutFail {
		errs = append(errs, fmt.Errorf("on_timeout: %q is not emit or fail", c.OnTimeout))
	}
	return errors.Join(errs...)
}

// Deadline is when a group opened at opened times out.
func (c Correlation) Deadline(opened time.Time) time.Time { return opened.Add(c.Window) }

// Decide says what becomes of a group now: OutcomeComplete when it is
// complete, the timeout's outcome when its deadline has passed, and
// OutcomeOpen otherwise.
func (c Correlation) Decide(complete bool, deadline, now time.Time) Outcome {
	switch {
	case complete:
		return OutcomeComplete
	case now.Before(deadline):
		return OutcomeOpen
	case c.OnTimeout == TimeoutFail:
		return OutcomeFailed
	default:
		return OutcomeIncomplete
	}
}

// Group is the records of one key, in arrival order.
type Group struct {
	Key      string
	OpenedAt time.Time
	Members  []usage.Raw
}

// Emission is what leaves the stage for an emitted group: either a merged
// record that takes the source position of the first member, with every
// other member filtered with a reason naming where it went, or every
// member failed.
type Emission struct {
	Merged   *usage.Raw
	Filtered map[int]*codes.Error // member index → FILTERED with its reason
	Failed   map[int]*codes.Error // member index → MEDIATION_FAILED
}

// Emit builds the emission of group g with outcome: merged is what the
// rule's merge made of the group (its fields). ruleErr is why a rule could
// not be evaluated for the group (its merge, its completeness check); it
// fails every member, naming the error.
func (c Correlation) Emit(g Group, outcome Outcome, merged map[string]string, ruleErr error) Emission {
	var e Emission
	if len(g.Members) == 0 {
		return e
	}
	if ruleErr != nil {
		return c.failAll(g, fmt.Sprintf("correlation group %s: %v", c.keyText(g.Key), ruleErr))
	}
	if outcome == OutcomeComplete || outcome == OutcomeIncomplete {
		first := g.Members[0]
		fields := make(map[string]string, len(merged)+1)
		for k, v := range merged {
			fields[k] = v
		}
		if outcome == OutcomeIncomplete {
			fields[IncompleteField] = IncompleteValue
		}
		e.Merged = &usage.Raw{Source: first.Source, Fields: fields}
		e.Filtered = make(map[int]*codes.Error, len(g.Members)-1)
		for i := 1; i < len(g.Members); i++ {
			e.Filtered[i] = codes.Errorf(codes.Filtered, "", "correlated into %s line %d (%s)",
				first.FileID, first.Line, c.keyText(g.Key))
		}
		return e
	}
	return c.failAll(g, fmt.Sprintf("correlation group %s timed out %s after it opened, incomplete with %s",
		c.keyText(g.Key), c.Window, describeMembers(g.Members)))
}

func (c Correlation) failAll(g Group, msg string) Emission {
	e := Emission{Failed: make(map[int]*codes.Error, len(g.Members))}
	for i := range g.Members {
		e.Failed[i] = codes.Errorf(codes.MediationFailed, "", "%s", msg)
	}
	return e
}

func (c Correlation) keyText(key string) string {
	name := c.KeyName
	if name == "" {
		name = "key"
	}
	return name + "=" + key
}

// describeMembers says what a group had: "2 records (file F lines 3, 7)".
func describeMembers(ms []usage.Raw) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d record", len(ms))
	if len(ms) != 1 {
		b.WriteString("s")
	}
	b.WriteString(" (")
	const most = 10
	lastFile := ""
	for i, m := range ms {
		if i == most {
			fmt.Fprintf(&b, ", … %d more", len(ms)-most)
			break
		}
		if m.FileID != lastFile {
			if i > 0 {
				b.WriteString("; ")
			}
			fmt.Fprintf(&b, "file %s line ", m.FileID)
			lastFile = m.FileID
		} else {
			b.WriteString(", ")
		}
		b.WriteString(strconv.FormatInt(m.Line, 10))
		if m.Parts > 1 {
			fmt.Fprintf(&b, " part %d", m.Part)
		}
	}
	b.WriteString(")")
	return b.String()
}

// SumDecimals adds decimal strings exactly: the quantity of a merged
// record is the sum of its parts' quantities, never a float's rounding.
// Empty strings count as nothing.
func SumDecimals(vals []string) (string, error) {
	var sum, d apd.Decimal
	ctx := apd.BaseContext.WithPrecision(34)
	ctx.Traps = apd.DefaultTraps
	for i, v := range vals {
		if v == "" {
			continue
		}
		if _, _, err := d.SetString(strings.TrimSpace(v)); err != nil || d.Form != apd.Finite {
			return "", fmt.Errorf("item %d: %q is not a decimal", i, v)
		}
		var next apd.Decimal
		if _, err := ctx.Add(&next, &sum, &d); err != nil {
			return "", fmt.Errorf("item %d: %w", i, err)
		}
		sum.Set(&next)
	}
	return sum.Text('f'), nil
}
