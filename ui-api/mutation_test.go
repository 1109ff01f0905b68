package uiapi

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"vivace.dev/vivace/internal/exceptions"
)

type actionResult struct {
	Accepted int
	Skipped  []struct{ ID, Reason string }
	Job      *struct {
		ID, Status string
		Taken      float64
	}
	Exception *struct {
		ID, Status string
		Record     map[string]any
		Edited     map[string]any
		Fields     map[string]any
		History    []struct{ Action string }
	}
}

// TestExceptionMutations: an edit is checked as the stage that failed
// would check it and kept next to the record as it arrived; reprocess and
// discard act on open exceptions only, by ids or (as a job) by filter;
// each needs an operator of the exception's client.
func TestExceptionMutations(t *testing.T) {
	w := newWorld(t)
	id := w.excs[w.acme]
	const edit = `mutation($id: ID!, $r: JSON!) { updateException(id: $id, record: $r) {
		accepted exception { id status record edited fields history { action } } } }`
	good := map[string]any{"record_id": w.acme + "-x0", "account_id": "A1", "usage_type": "VOICE", "quantity": "2",
		"usage_time": time.Now().UTC().Add(-time.Hour).Format(time.RFC3339)}
	bad := map[string]any{"record_id": w.acme + "-x0", "account_id": "A1", "usage_type": "VOICE", "quantity": "two",
		"usage_time": time.Now().UTC().Add(-time.Hour).Format(time.RFC3339)}

	_, r := w.query("acme-viewer", edit, map[string]any{"id": id, "r": good})
	w.refused("a viewer's edit", r)
	_, r = w.query("acme-operator", edit, map[string]any{"id": w.excs[w.beta], "r": good})
	w.refused("an edit of beta's exception", r)

	// A record that still fails is refused with its field and code.
	body, _ := json.Marshal(map[string]any{"query": edit, "variables": map[string]any{"id": id, "r": bad}})
	_, raw := w.post("acme-operator", "/graphql", body)
	var refusal struct {
		Errors []struct {
			Message    string
			Extensions map[string]string
		}
	}
	_ = json.Unmarshal(raw, &refusal)
	if len(refusal.Errors) != 1 || refusal.Errors[0].Extensions["code"] != "BAD_INPUT" ||
		refusal.Errors[0].Extensions["field"] != "quantity" || refusal.Errors[0].Extensions["exceptionCode"] != "BAD_QUANTITY" {
		t.Fatalf("a bad edit: %s", raw)
	}

	var out struct{ UpdateException actionResult }
	w.ok("acme-operator", edit, map[string]any{"id": id, "r": good}, &out)
	e := out.UpdateException.Exception
	if out.UpdateException.Accepted != 1 || e == nil || e.Edited["quantity"] != "2" || e.Record["quantity"] != "x" ||
		e.Fields["quantity"] != "2" || len(e.History) != 1 || e.History[0].Action != "exception.edit" {
		t.Fatalf("the edit: %+v", out.UpdateException)
	}

	const reprocess = `mutation($ids: [ID!], $f: ExceptionFilter, $all: Boolean) { reprocessExceptions(ids: $ids, filter: $f, all: $all) {
		accepted skipped { id reason } job { id status } } }`
	_, r = w.query("acme-viewer", reprocess, map[string]any{"ids": []string{id}})
	w.refused("a viewer's reprocess", r)
	_, r = w.query("acme-operator", reprocess, map[string]any{"f": map[string]any{"client": w.beta}})
	w.refused("a reprocess of beta's by filter", r)
	var rep struct{ ReprocessExceptions actionResult }
	w.ok("acme-operator", reprocess, map[string]any{"ids": []string{id}}, &rep)
	if rep.ReprocessExceptions.Accepted != 1 || len(rep.ReprocessExceptions.Skipped) != 0 {
		t.Fatalf("the reprocess: %+v", rep.ReprocessExceptions)
	}
	w.ok("acme-operator", reprocess, map[string]any{"ids": []string{id}}, &rep)
	if rep.ReprocessExceptions.Accepted != 0 || len(rep.ReprocessExceptions.Skipped) != 1 || !strings.Contains(rep.ReprocessExceptions.Skipped[0].Reason, "not open") {
		t.Fatalf("the same reprocess again: %+v", rep.ReprocessExceptions)
	}
	_, r = w.query("acme-operator", reprocess, map[string]any{})
	if !slices.Equal(r.codes(), []string{"BAD_INPUT"}) {
		t.Errorf("a reprocess that names nothing: %+v", r.Errors)
	}

	var one struct{ Exception struct{ Status string } }
	w.ok("acme-viewer", `query($id: ID!) { exception(id: $id) { status } }`, map[string]any{"id": id}, &one)
	if one.Exception.Status != "reprocessing" {
		t.Errorf("after the reprocess: %s", one.Exception.Status)
	}

	// Discard by filter: a job.
	const discard = `mutation($f: ExceptionFilter, $reason: String!) { discardExceptions(filter: $f, reason: $reason) {
		accepted job { id status } } }`
	_, r = w.query("acme-operator", discard, map[string]any{"f": map[string]any{"code": "UNKNOWN_ACCOUNT"}, "reason": " "})
	if !slices.Equal(r.codes(), []string{"BAD_INPUT"}) {
		t.Errorf("a discard without a reason: %+v", r.Errors)
	}
	var dis struct{ DiscardExceptions actionResult }
	w.ok("acme-operator", discard, map[string]any{"f": map[string]any{"code": "UNKNOWN_ACCOUNT"}, "reason": "test account"}, &dis)
	if dis.DiscardExceptions.Job == nil {
		t.Fatalf("a discard by filter: %+v", dis.DiscardExceptions)
	}
	w.gql.Work.(*exceptions.Service).Wait()
	var job struct {
		ExceptionJob struct {
			Status      string
			Taken, Done float64
		}
	}
	w.ok("acme-viewer", `query($id: ID!) { exceptionJob(id: $id) { status taken done } }`, map[string]any{"id": dis.DiscardExceptions.Job.ID}, &job)
	if job.ExceptionJob.Status != "done" || job.ExceptionJob.Done != 1 {
		t.Errorf("the job: %+v", job.ExceptionJob)
	}
	for client, want := range map[string]int{w.acme: 0, w.beta: 1} {
		var left excPage
		w.ok("admin", excQuery, map[string]any{"f": map[string]any{"client": client, "code": "UNKNOWN_ACCOUNT", "status": "open"}}, &left)
		if left.Exceptions.TotalCount != want {
			t.Errorf("%s's open UNKNOWN_ACCOUNT after acme's discard: %d, want %d", client, left.Exceptions.TotalCount, want)
		}
	}
}
