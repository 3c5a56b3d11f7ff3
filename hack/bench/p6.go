package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/charter-sh/charter/render"
)

// p6Objects is how many ConfigMaps the P6 chart renders; p6Changed is 1 %.
const (
	p6Objects = 1500
	p6Changed = p6Objects / 100
)

// p6Chart is a chart of p6Objects ConfigMaps; the first `changed` of them
// carry `stamp`, the others "v1", so --set changed=15 --set stamp=v2
// changes exactly 1 %.
var p6Chart = map[string]string{
	"Chart.yaml":  "apiVersion: v2\nname: configmaps\nversion: 0.1.0\ndescription: many ConfigMaps in one release (benchmark P6)\n",
	"values.yaml": fmt.Sprintf("count: %d\nchanged: 0\nstamp: v1\n", p6Objects),
	"templates/configmaps.yaml": `{{- range $i, $_ := until (int .Values.count) }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ $.Release.Name }}-{{ $i }}
  labels:
    app.kubernetes.io/name: configmaps
data:
  index: "{{ $i }}"
  stamp: {{ if lt $i (int $.Values.changed) }}{{ $.Values.stamp | quote }}{{ else }}"v1"{{ end }}
{{- end }}
`,
}

// p6 applies one release of 1500 ConfigMaps, then again unchanged, then
// with 1 % of them changed, with each tool.
func (b *bench) p6(ctx context.Context) error {
	dir := filepath.Join(b.work, "p6")
	chart := filepath.Join(dir, "configmaps")
	for name, data := range p6Chart {
		p := filepath.Join(chart, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			return err
		}
	}
	state := filepath.Join(dir, "state")
	if _, err := newState(state, ""); err != nil {
		return err
	}
	cns, hns, kns := "p6-charter", "p6-helm", "p6-kubectl"
	for _, ns := range []string{cns, cns + "-records", hns, kns} {
		if err := b.c.createNamespace(ctx, ns); err != nil {
			return err
		}
	}
	change := []string{"--set", fmt.Sprintf("changed=%d", p6Changed), "--set", "stamp=v2"}
	changeVals := map[string]any{"changed": p6Changed, "stamp": "v2"}

	// kubectl applies what charter's renderer produced, in -workers files.
	ch, err := render.Load(chart)
	if err != nil {
		return err
	}
	firstFiles, err := b.renderSplit(ch, "cms", kns, nil, filepath.Join(dir, "kubectl-first"))
	if err != nil {
		return err
	}
	changeFiles, err := b.renderSplit(ch, "cms", kns, changeVals, filepath.Join(dir, "kubectl-change"))
	if err != nil {
		return err
	}

	charter := func(args ...string) command {
		return b.charterCmd("p6-charter.log", append([]string{"--state", state, "--records-namespace", cns + "-records"}, args...)...)
	}
	helm := func(extra ...string) command {
		return b.helmCmd("p6-helm.log", append([]string{"upgrade", "--install", "cms", chart, "-n", hns, "--wait", "--timeout", "5m"}, extra...)...)
	}
	cases := []struct {
		name    string
		charter command
		helm    command
		files   []kubectlChunk
	}{
		{"first apply", charter("deploy", "-n", "cms", "--namespace", cns, "--timeout", "5m", chart), helm(), firstFiles},
		{"no-op", charter("redeploy", "--timeout", "5m", "cms"), helm(), firstFiles},
		{"1% change", charter(append([]string{"redeploy", "--timeout", "5m"}, append(change, "cms")...)...), helm(change...), changeFiles},
	}
	for _, c := range cases {
		for _, tool := range []string{"charter", "helm", "kubectl"} {
			r := Result{Scenario: "P6", Case: c.name, Tool: tool, Objects: p6Objects}
			switch tool {
			case "kubectl":
				b.kubectlApply(ctx, &r, kns, c.files)
			default:
				cmd := c.charter
				if tool == "helm" {
					cmd = c.helm
				}
				b.measure(ctx, &r, func(ctx context.Context, u *usage) error {
					_, err := cmd.run(ctx, u)
					return err
				})
			}
			b.add(r)
		}
	}
	return nil
}

// renderSplit renders one release and splits its objects into -workers
// files, for concurrent kubectl processes.
func (b *bench) renderSplit(ch *render.Chart, name, ns string, values map[string]any, dir string) ([]kubectlChunk, error) {
	caps, err := b.capabilities()
	if err != nil {
		return nil, err
	}
	res, err := render.Render(ch, values, caps.RenderOptions(render.Options{ReleaseName: name, Namespace: ns}))
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	parts := make([]bytes.Buffer, min(b.cfg.workers, max(1, len(res.Objects))))
	for i, o := range res.Objects {
		y, err := marshalObject(o.Object)
		if err != nil {
			return nil, err
		}
		parts[i%len(parts)].WriteString("---\n")
		parts[i%len(parts)].Write(y)
	}
	var chunks []kubectlChunk
	for i := range parts {
		f := filepath.Join(dir, fmt.Sprintf("objects-%d.yaml", i))
		if err := os.WriteFile(f, parts[i].Bytes(), 0o644); err != nil {
			return nil, err
		}
		chunks = append(chunks, kubectlChunk{file: f})
	}
	return chunks, nil
}
