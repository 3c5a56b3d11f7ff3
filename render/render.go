package render

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	chartv2 "helm.sh/helm/v4/pkg/chart/v2"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
	"helm.sh/helm/v4/pkg/engine"
	release "helm.sh/helm/v4/pkg/release/v1"
	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	kyaml "sigs.k8s.io/kustomize/kyaml/yaml"
	"sigs.k8s.io/yaml"
)

// Options describe the release a chart is rendered for.
type Options struct {
	ReleaseName string
	Namespace   string   // release namespace; empty means "default", as in Helm
	Revision    int      // .Release.Revision (default 1)
	IsUpgrade   bool     // .Release.IsUpgrade (and not .Release.IsInstall)
	KubeVersion string   // e.g. "v1.36.3"; empty = Helm's default capabilities
	APIVersions []string // extra .Capabilities.APIVersions (e.g. from discovery); empty = defaults

	// SkipCRDs leaves out the files in the chart's (and subcharts') crds/
	// directories, like helm install --skip-crds. By default they come first
	// in Objects, since Helm installs them before anything else.
	SkipCRDs bool
	// ClusterScoped adds kinds known to be cluster-scoped (e.g. from
	// discovery) to the built-in list used for namespace defaulting.
	ClusterScoped []schema.GroupKind
}

// Result is a rendered release.
type Result struct {
	Objects  []*unstructured.Unstructured // post-processed, in Helm's install order (crds/ first, then by kind)
	Manifest string                       // Objects as one YAML stream, "---" separated, each with a "# Source:" comment
	Notes    string                       // the root chart's rendered NOTES.txt (never in Objects)
	Values   map[string]any               // computed values: chart defaults coalesced with the user's values
	Hooks    []*unstructured.Unstructured // helm.sh/hook objects other than test hooks, post-processed, in Helm's hook order
}

// Render renders ch for a release the way `helm template` (and install)
// does: dependencies enabled/disabled by conditions and tags, import-values,
// values coalesced with chart defaults (a null deletes a default), every
// chart's values.schema.json checked, templates executed by Helm's engine
// with `lookup` returning nothing and DNS lookups disabled. It then splits
// off hooks (dropping test hooks) and NOTES.txt, orders objects like Helm
// and post-processes them (see doc.go for the namespace rule and the
// ownership metadata).
//
// Render does no I/O: no cluster, network, clock or disk access of its own
// (templates that call now, rand* or gen* functions are of course not
// deterministic). ch is not modified and may be rendered concurrently; the
// result shares no memory with values.
func Render(ch *Chart, values map[string]any, opts Options) (*Result, error) {
	return render(ch, values, opts, true)
}

// render is Render; Lint skips the chart's kubeVersion check, which is
// about the target cluster rather than the chart's own correctness.
func render(ch *Chart, values map[string]any, opts Options, checkKubeVersion bool) (*Result, error) {
	if ch == nil || ch.Chart == nil || ch.Chart.Metadata == nil {
		return nil, errors.New("render: no chart")
	}
	name := ch.Chart.Name()
	if err := chartutil.ValidateReleaseName(opts.ReleaseName); err != nil {
		return nil, fmt.Errorf("render %s: release name %q: %w", name, opts.ReleaseName, err)
	}
	if opts.Namespace == "" {
		opts.Namespace = "default"
	}
	if opts.Revision < 0 {
		return nil, fmt.Errorf("render %s: revision %d is negative", name, opts.Revision)
	}
	if opts.Revision == 0 {
		opts.Revision = 1
	}
	if ch.Chart.Metadata.Type == "library" {
		return nil, fmt.Errorf("render %s: library charts cannot be rendered on their own", name)
	}
	caps, err := capabilities(opts)
	if err != nil {
		return nil, fmt.Errorf("render %s: %w", name, err)
	}
	if kv := ch.Chart.Metadata.KubeVersion; checkKubeVersion && kv != "" && !chartutil.IsCompatibleRange(kv, caps.KubeVersion.String()) {
		return nil, fmt.Errorf("render %s: chart requires kubeVersion %s, which is incompatible with Kubernetes %s", name, kv, caps.KubeVersion.Version)
	}

	c := cloneChart(ch.Chart)
	vals := copyMap(values)
	if vals == nil {
		vals = map[string]any{}
	}
	if err := chartutil.ProcessDependencies(c, vals); err != nil {
		return nil, fmt.Errorf("render %s: dependencies: %s", name, oneLine(err.Error()))
	}
	top, err := util.ToRenderValuesWithSchemaValidation(c, vals, common.ReleaseOptions{
		Name:      opts.ReleaseName,
		Namespace: opts.Namespace,
		Revision:  opts.Revision,
		IsUpgrade: opts.IsUpgrade,
		IsInstall: !opts.IsUpgrade,
	}, caps, true) // the schemas are checked below, without network access
	if err != nil {
		return nil, fmt.Errorf("render %s: values: %s", name, oneLine(err.Error()))
	}
	computed, err := top.Table("Values")
	if err != nil {
		return nil, fmt.Errorf("render %s: values: %w", name, err)
	}
	if err := validateSchemas(c, computed.AsMap()); err != nil {
		return nil, fmt.Errorf("render %s: %w", name, err)
	}

	var e engine.Engine // no client: lookup returns empty maps; EnableDNS false
	files, err := e.Render(c, top)
	if err != nil {
		return nil, fmt.Errorf("render %s: %s", name, oneLine(err.Error()))
	}
	notes := files[path.Join(c.Name(), "templates", "NOTES.txt")]
	for k := range files {
		if strings.HasSuffix(k, "NOTES.txt") {
			delete(files, k)
		}
	}

	hooks, manifests, err := releaseutil.SortManifests(files, nil, releaseutil.InstallOrder)
	if err != nil {
		return nil, fmt.Errorf("render %s: %s", name, oneLine(err.Error()))
	}
	var objs []doc
	if !opts.SkipCRDs {
		for _, crd := range c.CRDObjects() {
			d, err := parseStream(crd.Filename, string(crd.File.Data))
			if err != nil {
				return nil, fmt.Errorf("render %s: %w", name, err)
			}
			objs = append(objs, d...)
		}
	}
	for _, m := range manifests {
		// Helm trims each document and re-adds a newline when it writes the
		// release manifest; without it a final block scalar loses its "\n".
		d, err := parseDoc(m.Name, m.Content+"\n")
		if err != nil {
			return nil, fmt.Errorf("render %s: %w", name, err)
		}
		objs = append(objs, d...)
	}
	var hookObjs []doc
	for _, h := range hooks {
		if slices.Contains(h.Events, release.HookTest) {
			continue
		}
		d, err := parseDoc(h.Path, h.Manifest+"\n")
		if err != nil {
			return nil, fmt.Errorf("render %s: %w", name, err)
		}
		hookObjs = append(hookObjs, d...)
	}

	all, err := postRender(append(objs, hookObjs...), opts)
	if err != nil {
		return nil, fmt.Errorf("render %s: post-render: %w", name, err)
	}
	res := &Result{Notes: notes, Values: copyMap(computed.AsMap())}
	var sb strings.Builder
	for i, d := range all {
		if i < len(objs) {
			res.Objects = append(res.Objects, d.obj)
			fmt.Fprintf(&sb, "---\n# Source: %s\n%s", d.source, d.text)
		} else {
			res.Hooks = append(res.Hooks, d.obj)
		}
	}
	res.Manifest = sb.String()
	return res, nil
}

// capabilities are Helm's defaults with the requested Kubernetes version and
// extra API versions, as `helm template --kube-version --api-versions` sets them.
func capabilities(opts Options) (*common.Capabilities, error) {
	caps := common.DefaultCapabilities.Copy()
	if opts.KubeVersion != "" {
		kv, err := common.ParseKubeVersion(opts.KubeVersion)
		if err != nil {
			return nil, fmt.Errorf("kube version %q: %w", opts.KubeVersion, err)
		}
		caps.KubeVersion = *kv
	}
	// A fresh slice: Copy shares the backing array of Helm's defaults.
	caps.APIVersions = common.VersionSet(slices.Concat([]string(caps.APIVersions), opts.APIVersions))
	return caps, nil
}

// doc is one rendered object on its way through post-processing.
type doc struct {
	source string // template (or crds/ file) it came from
	obj    *unstructured.Unstructured
	text   string // YAML after post-processing
}

// parseStream parses a multi-document YAML file (a crds/ file).
func parseStream(source, content string) ([]doc, error) {
	split := releaseutil.SplitManifests(content)
	keys := make([]string, 0, len(split))
	for k := range split {
		keys = append(keys, k)
	}
	sort.Sort(releaseutil.BySplitManifestsOrder(keys))
	var out []doc
	for _, k := range keys {
		d, err := parseDoc(source, split[k]+"\n")
		if err != nil {
			return nil, err
		}
		out = append(out, d...)
	}
	return out, nil
}

// parseDoc parses one rendered document with the YAML rules kubectl and
// Helm's client use (YAML 1.1 scalars, JSON number types). A document that
// is empty or only comments yields nothing; a v1 List yields its items.
func parseDoc(source, content string) ([]doc, error) {
	j, err := yaml.YAMLToJSON([]byte(content))
	if err != nil {
		return nil, fmt.Errorf("%s: not valid YAML: %s", source, trimYAMLErr(err.Error()))
	}
	var v any
	if err := utiljson.Unmarshal(j, &v); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	if v == nil {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: document is not a mapping: %s", source, firstLine(content))
	}
	if len(m) == 0 {
		return nil, nil
	}
	if items, ok := m["items"].([]any); ok && strings.HasSuffix(fmt.Sprint(m["kind"]), "List") {
		var out []doc
		for _, it := range items {
			im, ok := it.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%s: %v item is not a mapping", source, m["kind"])
			}
			d, err := checkObject(source, im)
			if err != nil {
				return nil, err
			}
			out = append(out, d)
		}
		return out, nil
	}
	d, err := checkObject(source, m)
	if err != nil {
		return nil, err
	}
	return []doc{d}, nil
}

func checkObject(source string, m map[string]any) (doc, error) {
	u := &unstructured.Unstructured{Object: m}
	ident := func() string {
		kind := u.GetKind()
		if kind == "" {
			kind = "object"
		}
		if n := u.GetName(); n != "" {
			return fmt.Sprintf("%s %q", kind, n)
		}
		return kind
	}
	if s, ok := m["apiVersion"].(string); !ok || s == "" {
		return doc{}, fmt.Errorf("%s: %s has no apiVersion", source, ident())
	}
	if s, ok := m["kind"].(string); !ok || s == "" {
		return doc{}, fmt.Errorf("%s: %s has no kind", source, ident())
	}
	meta, ok := m["metadata"].(map[string]any)
	if !ok {
		return doc{}, fmt.Errorf("%s: %s has no metadata", source, ident())
	}
	name, _ := meta["name"].(string)
	gen, _ := meta["generateName"].(string)
	if name == "" && gen == "" {
		return doc{}, fmt.Errorf("%s: %s has no metadata.name", source, ident())
	}
	return doc{source: source, obj: u}, nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 60 {
		s = s[:60] + "..."
	}
	return s
}

// postRender runs the kio filter chain over all objects and hooks together
// (so CRDs anywhere in the release count for the namespace rule) and
// converts the result back to unstructured objects and YAML text.
func postRender(docs []doc, opts Options) ([]doc, error) {
	nodes := make([]*kyaml.RNode, len(docs))
	for i, d := range docs {
		n, err := kyaml.FromMap(d.obj.Object)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", d.source, err)
		}
		nodes[i] = n
	}
	var err error
	for _, f := range filters(opts) {
		if nodes, err = f.Filter(nodes); err != nil {
			return nil, err
		}
	}
	if len(nodes) != len(docs) {
		return nil, fmt.Errorf("filters returned %d objects for %d", len(nodes), len(docs))
	}
	out := make([]doc, len(docs))
	for i, n := range nodes {
		j, err := n.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", docs[i].source, err)
		}
		var m map[string]any
		if err := utiljson.Unmarshal(j, &m); err != nil {
			return nil, fmt.Errorf("%s: %w", docs[i].source, err)
		}
		text, err := n.String()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", docs[i].source, err)
		}
		out[i] = doc{source: docs[i].source, obj: &unstructured.Unstructured{Object: m}, text: text}
	}
	return out, nil
}

// cloneChart copies the parts of a chart tree that rendering changes
// (ProcessDependencies rewrites metadata, dependency lists and values), so
// a loaded Chart can be rendered any number of times. File contents are
// shared: nothing writes to them.
func cloneChart(c *chartv2.Chart) *chartv2.Chart {
	out := *c
	if c.Metadata != nil {
		md := *c.Metadata
		md.Dependencies = make([]*chartv2.Dependency, len(c.Metadata.Dependencies))
		for i, d := range c.Metadata.Dependencies {
			if d == nil {
				continue
			}
			dc := *d
			dc.Tags = slices.Clone(d.Tags)
			dc.ImportValues = make([]any, len(d.ImportValues))
			for j, iv := range d.ImportValues {
				dc.ImportValues[j] = copyValue(iv)
			}
			md.Dependencies[i] = &dc
		}
		if c.Metadata.Dependencies == nil {
			md.Dependencies = nil
		}
		out.Metadata = &md
	}
	out.Values = copyMap(c.Values)
	deps := make([]*chartv2.Chart, 0, len(c.Dependencies()))
	for _, d := range c.Dependencies() {
		deps = append(deps, cloneChart(d))
	}
	out.SetDependencies(deps...)
	return &out
}
