package mediation_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"vivace.dev/vivace/plugins/mediation"
)

// meter is a toy client mediator: each input record is one reading of a
// meter, "kwh" a decimal; it becomes one usage record of type ENERGY.
// Readings of the meter "TEST" are filtered, and a reading without kwh
// fails naming the field. Its settings say which account a meter belongs
// to ({"accounts": {"M1": "A-100"}}).
type meter struct {
	accounts map[string]string
}

func (m *meter) Describe(context.Context) (mediation.Info, error) {
	return mediation.Info{Name: "meter", Version: "1.0.0", Description: "meter readings to energy usage"}, nil
}

func (m *meter) Configure(_ context.Context, _ string, config json.RawMessage) error {
	var s struct {
		Accounts map[string]string `json:"accounts"`
	}
	if err := json.Unmarshal(config, &s); err != nil {
		return fmt.Errorf("settings: %w", err)
	}
	m.accounts = s.Accounts
	return nil
}

func (m *meter) Mediate(_ context.Context, records []mediation.RawRecord) ([]mediation.Result, error) {
	out := make([]mediation.Result, len(records))
	for i, r := range records {
		id := r.Fields["meter"]
		kwh := strings.TrimSpace(r.Fields["kwh"])
		switch {
		case id == "TEST":
			out[i] = mediation.Filter("a test meter")
		case kwh == "":
			out[i] = mediation.Fail("kwh", "no reading")
		default:
			out[i] = mediation.Mediated(map[string]string{
				"record_id":  id + "-" + strconv.FormatInt(r.Line, 10),
				"account_id": m.accounts[id],
				"usage_type": "ENERGY",
				"usage_time": r.Fields["read_at"],
				"quantity":   kwh,
			})
		}
	}
	return out, nil
}

// ExampleServe serves the toy mediator and calls it as the host does. A
// plugin's main function calls Serve and nothing else:
//
//	func main() { mediation.Serve(&meter{}) }
//
// Serve runs go-plugin with ServeConfig; so that this example runs on its
// own, it serves the same configuration in go-plugin's test mode, in this
// process, and attaches to it as the host would: the handshake, the
// plugin map of every protocol version, then Describe, Configure and a
// batch.
func ExampleServe() {
	// The versions a host offers; a host that starts the plugin binary
	// passes them in its environment.
	var offered []string
	for _, v := range mediation.SupportedVersions {
		offered = append(offered, strconv.Itoa(v))
	}
	os.Setenv("PLUGIN_PROTOCOL_VERSIONS", strings.Join(offered, ","))
	defer os.Unsetenv("PLUGIN_PROTOCOL_VERSIONS")
	ctx, cancel := context.WithCancel(context.Background())
	reattach := make(chan *plugin.ReattachConfig, 1)
	closed := make(chan struct{})
	cfg := mediation.ServeConfig(&meter{})
	cfg.Logger = hclog.NewNullLogger()
	cfg.Test = &plugin.ServeTestConfig{Context: ctx, ReattachConfigCh: reattach, CloseCh: closed}
	go plugin.Serve(cfg)
	defer func() { cancel(); <-closed }()

	// A host that starts the plugin binary negotiates the version with
	// VersionedPlugins; attached to a running plugin, it takes the plugin
	// set of the version the plugin chose.
	rc := <-reattach
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  mediation.Handshake,
		Plugins:          mediation.VersionedPlugins()[rc.ProtocolVersion],
		Reattach:         rc,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           hclog.NewNullLogger(),
	})
	defer client.Kill()
	rpc, err := client.Client()
	if err != nil {
		fmt.Println(err)
		return
	}
	raw, err := rpc.Dispense(mediation.PluginName)
	if err != nil {
		fmt.Println(err)
		return
	}
	med := raw.(mediation.Caller)
	info, _ := med.Describe(ctx)
	fmt.Printf("%s %s, protocol version %d\n", info.Name, info.Version, client.NegotiatedVersion())
	if err := med.Configure(ctx, "acme", json.RawMessage(`{"accounts": {"M1": "A-100"}}`)); err != nil {
		fmt.Println(err)
		return
	}

	var b mediation.Batch
	for line, reading := range [][2]string{{"M1", "12.5"}, {"TEST", "1"}, {"M1", ""}} {
		b.Add("acme", "file-1", int64(line+2))
		b.Field("meter", reading[0])
		b.Field("kwh", reading[1])
		b.Field("read_at", "2026-10-01T08:00:00Z")
	}
	replies, err := med.MediateBatch(ctx, &b)
	if err != nil {
		fmt.Println(err)
		return
	}
	for i, r := range replies {
		switch {
		case r.Error != nil:
			fmt.Printf("line %d: failed: %v\n", b.Line(i), r.Error)
		case r.Filtered != "":
			fmt.Printf("line %d: filtered: %s\n", b.Line(i), r.Filtered)
		default:
			for _, rec := range r.Records {
				var kv []string
				for _, f := range rec {
					kv = append(kv, f.Name+"="+f.Value)
				}
				sort.Strings(kv)
				fmt.Printf("line %d: %s\n", b.Line(i), strings.Join(kv, " "))
			}
		}
	}
	// Output:
	// meter 1.0.0, protocol version 2
	// line 2: account_id=A-100 quantity=12.5 record_id=M1-2 usage_time=2026-10-01T08:00:00Z usage_type=ENERGY
	// line 3: filtered: a test meter
	// line 4: failed: MEDIATION_FAILED: kwh: no reading
}

// ExampleFail shows the three kinds of Result a Mediator answers per record.
func ExampleFail() {
	for _, r := range []mediation.Result{
		mediation.Mediated(map[string]string{"record_id": "r1", "quantity": "2"}),
		mediation.Filter("a test call"),
		mediation.Fail("duration_sec", "%q is not a number of seconds", "abc"),
	} {
		switch {
		case r.Error != nil:
			fmt.Println("failed:", r.Error)
		case r.Filtered != "":
			fmt.Println("filtered:", r.Filtered)
		default:
			fmt.Println("records:", len(r.Records))
		}
	}
	// Output:
	// records: 1
	// filtered: a test call
	// failed: MEDIATION_FAILED: duration_sec: "abc" is not a number of seconds
}
