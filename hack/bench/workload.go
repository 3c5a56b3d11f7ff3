package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/charter-sh/charter/reconcile"
	"github.com/charter-sh/charter/render"
)

// podinfoValues are every release's values in P1–P3: the chart's defaults
// plus a ServiceAccount (Deployment, Service and ServiceAccount: 3 objects)
// and a per-release message, which P3 edits. The message goes into the
// pod template, so a change rolls the Deployment.
func podinfoValues(name string, edit int) string {
	return fmt.Sprintf("serviceAccount:\n  enabled: true\nui:\n  message: %q\n", fmt.Sprintf("%s edit %d", name, edit))
}

func releaseName(i int) string { return fmt.Sprintf("r%04d", i) }

func releaseNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = releaseName(i)
	}
	return out
}

// packaged returns the podinfo chart packaged as .tgz (charter package),
// made once per run.
func (b *bench) packaged(ctx context.Context, chart string) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	dst := filepath.Join(b.work, "charts")
	entries, _ := filepath.Glob(filepath.Join(dst, chart+"-*.tgz"))
	if len(entries) == 1 {
		return entries[0], nil
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return "", err
	}
	if _, err := b.charterCmd("package.log", "package", filepath.Join(b.cfg.charts, chart), "-d", dst).run(ctx, nil); err != nil {
		return "", err
	}
	entries, _ = filepath.Glob(filepath.Join(dst, chart+"-*.tgz"))
	if len(entries) != 1 {
		return "", fmt.Errorf("charter package %s: no archive in %s", chart, dst)
	}
	return entries[0], nil
}

// newState creates a folder state holding the archive in charts/ and no
// releases; it returns the chart reference declarations use.
func newState(dir, archive string) (string, error) {
	for _, sub := range []string{"releases", "charts", "values"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return "", fmt.Errorf("create state: %w", err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "charter.yaml"), []byte("apiVersion: charter.sh/v1\nkind: State\n"), 0o644); err != nil {
		return "", fmt.Errorf("create state: %w", err)
	}
	if archive == "" {
		return "", nil
	}
	data, err := os.ReadFile(archive)
	if err != nil {
		return "", err
	}
	ref := "charts/" + filepath.Base(archive)
	if err := os.WriteFile(filepath.Join(dir, ref), data, 0o644); err != nil {
		return "", fmt.Errorf("create state: %w", err)
	}
	return ref, nil
}

// declaration is a release file as a user would write it by hand.
func declaration(name, namespace, chart, version string, valuesFile bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: charter.sh/v1\nkind: Release\nname: %s\nnamespace: %s\nchart: %s\n", name, namespace, chart)
	if version != "" {
		fmt.Fprintf(&b, "version: %s\n", version)
	}
	if valuesFile {
		fmt.Fprintf(&b, "valuesFiles:\n  - values/%s.yaml\n", name)
	}
	return b.String()
}

// writeFileAtomic writes through a temporary file and a rename, as editors
// and `svn up` do, so the daemon never reads half a file.
func writeFileAtomic(path string, data []byte) error {
	tmp := filepath.Join(filepath.Dir(path), ".bench-tmp-"+filepath.Base(path))
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// renderer renders releases the way the daemon does: charter's render
// package with the API server's capabilities.
type renderer struct {
	once sync.Once
	caps reconcile.Capabilities
	err  error
}

func (b *bench) capabilities() (reconcile.Capabilities, error) {
	r := &b.caps
	r.once.Do(func() {
		c, err := reconcile.NewCluster(b.env.RESTConfig())
		if err != nil {
			r.err = err
			return
		}
		r.caps, r.err = c.Capabilities()
	})
	return r.caps, r.err
}

// renderObjects renders a release as the daemon does: its objects, then
// its hooks (charter applies both).
func (b *bench) renderObjects(ch *render.Chart, name, namespace string, values map[string]any) ([]*unstructured.Unstructured, error) {
	caps, err := b.capabilities()
	if err != nil {
		return nil, err
	}
	res, err := render.Render(ch, values, caps.RenderOptions(render.Options{ReleaseName: name, Namespace: namespace}))
	if err != nil {
		return nil, err
	}
	return append(append(res.Objects[:0:0], res.Objects...), res.Hooks...), nil
}

// renderYAML renders a release to a YAML stream of its objects and returns
// how many there are.
func (b *bench) renderYAML(ch *render.Chart, name, namespace string, values map[string]any) ([]byte, int, error) {
	objs, err := b.renderObjects(ch, name, namespace, values)
	if err != nil {
		return nil, 0, err
	}
	var buf bytes.Buffer
	for _, o := range objs {
		y, err := marshalObject(o.Object)
		if err != nil {
			return nil, 0, err
		}
		buf.WriteString("---\n")
		buf.Write(y)
	}
	return buf.Bytes(), len(objs), nil
}

func parseValues(s string) (map[string]any, error) {
	return render.ParseValues("values.yaml", []byte(s))
}

func marshalObject(o map[string]any) ([]byte, error) { return yaml.Marshal(o) }
