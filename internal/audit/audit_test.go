package audit

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestEntryValidate(t *testing.T) {
	good := Entry{Actor: Operator("ana"), Action: SettingSet, Target: Target("setting", "mur_sync.batch_size"),
		Before: json.RawMessage(`1000`), After: json.RawMessage(`500`)}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		e    Entry
		want []string
	}{
		{"empty", Entry{}, []string{"actor is required", "action is required", "target is required"}},
		{"bad json", Entry{Actor: System, Action: SyncRetry, Target: "client:x", After: json.RawMessage(`{`)},
			[]string{"after is not JSON"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.e.Validate()
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not say %q", err, w)
				}
			}
		})
	}
	if Operator("") != "operator:unknown" {
		t.Error(Operator(""))
	}
	if JSON(nil) != nil || string(JSON(map[string]int{"a": 1})) != `{"a":1}` {
		t.Error("JSON")
	}
}
