package benthos

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"
)

func newRename(t *testing.T, yaml string) service.Processor {
	t.Helper()
	conf, err := renameSpec().ParseYAML(yaml, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := newRenameProc(conf)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func renameOne(t *testing.T, p service.Processor, m *service.Message) *service.Message {
	t.Helper()
	out, err := p.Process(context.Background(), m)
	if err != nil || len(out) != 1 {
		t.Fatalf("process: %v %v", out, err)
	}
	return out[0]
}

func TestRename(t *testing.T) {
	p := newRename(t, `
when: 'this.client == "acme"'
fields: { msisdn: account_id, units: quantity, a: b, b: a }
required: [ msisdn ]
`)
	got := rawFields(t, renameOne(t, p, rawMsg("acme", 2, `{"msisdn":"4917","units":"3","a":"1","b":"2","usage_type":"V"}`)))
	if fmt.Sprint(got) != "map[a:2 account_id:4917 b:1 quantity:3 usage_type:V]" {
		t.Errorf("renamed and swapped: %v", got)
	}
	// Another client is left alone; a missing optional field is no fault.
	if got := rawFields(t, renameOne(t, p, rawMsg("other", 3, `{"msisdn":"4917"}`))); got["msisdn"] != "4917" {
		t.Errorf("another client's record changed: %v", got)
	}
	if got := rawFields(t, renameOne(t, p, rawMsg("acme", 4, `{"msisdn":"4917"}`))); fmt.Sprint(got) != "map[account_id:4917]" {
		t.Errorf("without the optional fields: %v", got)
	}
	checkFailed(t, renameOne(t, p, rawMsg("acme", 5, `{"units":"3"}`)), "MEDIATION_FAILED", "msisdn",
		"field msisdn is missing; it is renamed to account_id")
	m := renameOne(t, p, rawMsg("acme", 6, `{"msisdn":"4917","account_id":"A1"}`))
	checkFailed(t, m, "MEDIATION_FAILED", "msisdn", "cannot be renamed to account_id: the record already has a field account_id")
	if got := rawFields(t, m); got["account_id"] != "A1" || got["msisdn"] != "4917" {
		t.Errorf("a failed record was changed: %v", got)
	}
	failed := rawMsg("acme", 7, `{"msisdn":"4917"}`)
	failed.SetError(errors.New("an earlier rule failed it"))
	if got := rawFields(t, renameOne(t, p, failed)); got["msisdn"] != "4917" {
		t.Errorf("an already failed record was renamed: %v", got)
	}
}

func TestRenameConfigErrors(t *testing.T) {
	for yaml, want := range map[string]string{
		`fields: {}`:                        "fields: empty",
		`fields: { a: x, b: x }`:            `are both renamed to "x"`,
		`fields: { a: "" }`:                 "names must not be empty",
		"fields: { a: b }\nrequired: [ c ]": `required: "c" is not one of the fields renamed`,
	} {
		conf, err := renameSpec().ParseYAML(yaml, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := newRenameProc(conf); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want …%s…", yaml, err, want)
		}
	}
}
