package e2e

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFakeCoreCommand: vivace fake-core prints its URL, answers the bulk
// call, reports totals, takes faults at run time, and stops cleanly on
// SIGTERM without ever printing the key.
func TestFakeCoreCommand(t *testing.T) {
	const key = "e2e-fake-core-key"
	cmd := exec.Command(binary, "fake-core", "--addr", "127.0.0.1:0", "--log-level", "debug")
	cmd.Env = append(os.Environ(), "VIVACE_CORE_CLIENT_NO=1001", "VIVACE_CORE_AUTH_KEY="+key)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("first line: %v; stderr %s", err, stderr.String())
	}
	url := strings.TrimSpace(line)
	c := &http.Client{Timeout: 10 * time.Second}
	call := func() string {
		resp, err := c.Post(url+"/api/ws/api_ws_class_dispatcher.php", "application/json", strings.NewReader(
			`{"rest_call":"bulk_record_usage_m","output_format":"json","client_no":1001,"auth_key":"`+key+`","usage_recs":[`+
				`{"client_record_id":"agg-1","client_acct_id":"ACC-1","usage_type_code":"VOICE","usage_units":10,"usage_date":"2024-05-01 00:00:00","amt":1.23},`+
				`{"client_record_id":"agg-2","client_acct_id":"ACC-9","usage_type_code":"VOICE","usage_units":1,"amt":0.10}]}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if got := call(); got != `{"error_code":0,"error_msg":"OK"}` {
		t.Fatalf("answer %s", got)
	}
	req, _ := http.NewRequest(http.MethodPatch, url+"/fake/faults", strings.NewReader(`{"reject_accounts":{"ACC-9":{}}}`))
	resp, err := c.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("faults: %v %v", resp, err)
	}
	resp.Body.Close()
	if got := call(); !strings.Contains(got, `"out_client_record_id":"agg-2","record_error_code":1009`) {
		t.Fatalf("answer with the fault %s", got)
	}
	resp, err = c.Get(url + "/fake/totals?account=ACC-1")
	if err != nil {
		t.Fatal(err)
	}
	var totals struct {
		Totals []struct {
			Records       int
			Units, Amount string
		}
	}
	err = json.NewDecoder(resp.Body).Decode(&totals)
	resp.Body.Close()
	if err != nil || len(totals.Totals) != 1 || totals.Totals[0].Records != 1 || totals.Totals[0].Units != "10" || totals.Totals[0].Amount != "1.23" {
		t.Fatalf("totals %+v %v", totals, err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v; stderr %s", err, stderr.String())
	}
	if strings.Contains(stderr.String(), key) || !strings.Contains(stderr.String(), "fake core listening") {
		t.Errorf("stderr %s", stderr.String())
	}
}
