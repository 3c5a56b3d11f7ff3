package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDiff(t *testing.T) {
	c := newCLI(t)
	chart := writeChart(t, filepath.Join(t.TempDir(), "sec"), map[string]string{
		"Chart.yaml":  "apiVersion: v2\nname: sec\nversion: 1.0.0\n",
		"values.yaml": "password: hunter2\ngreeting: hi\nextra: true\n",
		"templates/secret.yaml": `apiVersion: v1
kind: Secret
metadata:
  name: {{ .Release.Name }}-creds
stringData:
  password: {{ .Values.password | quote }}
`,
		"templates/cm.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-cm
data:
  greeting: {{ .Values.greeting | quote }}
`,
		"templates/extra.yaml": `{{ if .Values.extra }}apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-extra
{{ end }}`,
	})

	// Not deployed yet: everything would be created; exit 2.
	out, _, code := c.run("diff", "-n", "dif", "--namespace", c.ns, chart)
	if code != 2 {
		t.Fatalf("diff of a new release: exit %d, want 2", code)
	}
	mustContain(t, out, "Secret/"+c.ns+"/dif-creds created", "ConfigMap/"+c.ns+"/dif-cm created")
	if strings.Contains(out, "hunter2") {
		t.Errorf("diff printed secret data:\n%s", out)
	}

	c.ok("deploy", "-n", "dif", "--namespace", c.ns, chart)

	// Deployed, nothing changed: exit 0.
	if _, _, code := c.run("diff", "dif"); code != 0 {
		t.Errorf("diff of an unchanged release: exit %d, want 0", code)
	}

	// Pending value changes: field-level diff, secret masked, pruned object listed.
	out, _, code = c.run("diff", "dif", "--set", "greeting=hello", "--set", "password=swordfish", "--set", "extra=false")
	if code != 2 {
		t.Fatalf("diff with changes: exit %d, want 2", code)
	}
	mustContain(t, out, "ConfigMap/"+c.ns+"/dif-cm configured", `-  greeting: hi`, `+  greeting: hello`,
		"Secret/"+c.ns+"/dif-creds configured", "ConfigMap/"+c.ns+"/dif-extra deleted")
	for _, leak := range []string{"hunter2", "swordfish", "aHVudGVyMg", "c3dvcmRmaXNo"} {
		if strings.Contains(out, leak) {
			t.Errorf("diff leaked secret data %q:\n%s", leak, out)
		}
	}
	// diff never changes anything.
	if _, _, code := c.run("diff", "dif"); code != 0 {
		t.Errorf("diff changed the release: a later diff exits %d", code)
	}
}

func TestDeployWaitsForARunningDaemon(t *testing.T) {
	c := newCLI(t)
	c.ok("init")
	ctx, cancel := context.WithCancel(context.Background())
	var dout, derr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--kubeconfig", c.kubeconfig, "--state", c.state, "--records-namespace", c.ns,
			"daemon", "run", "--interval", "5s", "--debounce", "100ms", "--log-json"}, strings.NewReader(""), &dout, &derr)
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("daemon exited %d on shutdown: %s", code, derr.String())
		}
	}()
	// Wait for the daemon's heartbeat.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(derr.String(), "daemon started") {
		if time.Now().After(deadline) {
			t.Fatalf("daemon did not start: %s", derr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)

	_, errOut, code := c.run("deploy", "-n", "via-daemon", "--namespace", c.ns, exampleChart)
	if code != 0 {
		t.Fatalf("deploy: exit %d: %s", code, errOut)
	}
	mustContain(t, errOut, "Waiting for the daemon", "via-daemon: deployed")

	out := c.ok("status", "via-daemon", "-o", "json")
	var v StatusView
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("status -o json is not clean JSON: %v\n%s", err, out)
	}
	if v.Status != "deployed" || v.Revision != 1 || len(v.Objects) != 3 {
		t.Errorf("status = %+v, want deployed revision 1 with 3 objects", v)
	}
	for _, line := range strings.Split(strings.TrimSpace(derr.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("daemon log line is not JSON: %q", line)
		}
	}
	mustContain(t, derr.String(), `"release":"via-daemon"`, `"action":"installed"`)

	_, errOut, code = c.run("uninstall", "via-daemon")
	if code != 0 {
		t.Fatalf("uninstall: exit %d: %s", code, errOut)
	}
	c.fails("status", "via-daemon")
}
