package state

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseReleaseBehaviourFields(t *testing.T) {
	cases := map[string]struct {
		in      string
		want    *Release
		wantErr string
	}{
		"all set, short forms": {
			in: "chart: c\ntimeout: 90s\nremediation: rollback\nforce: true\nadopt: false\n" +
				"drift:\n  ignore:\n    - paths: [/spec/replicas]\n      target: {kind: Deployment, name: web}\n    - paths: [\"/data/a~1b\"]\n",
			want: &Release{Chart: "c", Timeout: "90s", Remediation: &Remediation{Strategy: "rollback"}, Force: true,
				Drift: &Drift{Ignore: []DriftIgnore{
					{Paths: []string{"/spec/replicas"}, Target: &DriftTarget{Kind: "Deployment", Name: "web"}},
					{Paths: []string{"/data/a~1b"}},
				}}},
		},
		"remediation mapping": {
			in:   "chart: c\nremediation: {strategy: rollback, retries: 5}\n",
			want: &Release{Chart: "c", Remediation: &Remediation{Strategy: "rollback", Retries: 5}},
		},
		"empty drift is no drift": {in: "chart: c\ndrift: {ignore: []}\n", want: &Release{Chart: "c"}},
		"empty target is no target": {
			in:   "chart: c\ndrift: {ignore: [{paths: [/a], target: {}}]}\n",
			want: &Release{Chart: "c", Drift: &Drift{Ignore: []DriftIgnore{{Paths: []string{"/a"}}}}},
		},
		"timeout without unit":    {in: "chart: c\ntimeout: 300\n", wantErr: `f.yaml: line 2: timeout "300" is not a duration`},
		"negative timeout":        {in: "chart: c\ntimeout: -1m\n", wantErr: `line 2: timeout "-1m" must be positive`},
		"unknown strategy":        {in: "chart: c\nremediation: retry\n", wantErr: `f.yaml: line 2: remediation: strategy "retry" is not supported: want rollback or none`},
		"retries out of range":    {in: "chart: c\nremediation: {strategy: rollback, retries: 11}\n", wantErr: "line 2: field remediation.retries is 11: want 1 to 10"},
		"retries zero":            {in: "chart: c\nremediation: {strategy: rollback, retries: 0}\n", wantErr: "field remediation.retries is 0: want 1 to 10"},
		"retries not a number":    {in: "chart: c\nremediation: {strategy: rollback, retries: many}\n", wantErr: `field remediation.retries must be a whole number, got the scalar "many"`},
		"remediation unknown key": {in: "chart: c\nremediation: {strategy: rollback, tries: 2}\n", wantErr: "unknown field remediation.tries"},
		"remediation list":        {in: "chart: c\nremediation: [rollback]\n", wantErr: "field remediation must be rollback, none or a mapping"},
		"force is a string":       {in: "chart: c\nforce: \"true\"\n", wantErr: `f.yaml: line 2: field force must be true or false, got the scalar "true"`},
		"adopt yes":               {in: "chart: c\nadopt: yes\n", wantErr: `field adopt must be true or false, got the scalar "yes"`},
		"drift is a list":         {in: "chart: c\ndrift: [/spec]\n", wantErr: "field drift must be a mapping {ignore: [...]}, got a list"},
		"drift unknown key":       {in: "chart: c\ndrift: {ignored: []}\n", wantErr: "unknown field drift.ignored (known fields: ignore)"},
		"path without slash":      {in: "chart: c\ndrift: {ignore: [{paths: [spec/replicas]}]}\n", wantErr: `field drift.ignore[0].paths: path "spec/replicas" is not a JSON pointer: it must start with /`},
		"bad escape":              {in: "chart: c\ndrift: {ignore: [{paths: [/a~2b]}]}\n", wantErr: `path "/a~2b": ~ must be followed by 0`},
		"identity path":           {in: "chart: c\ndrift: {ignore: [{paths: [/metadata/name]}]}\n", wantErr: `path "/metadata/name" is part of the object's identity`},
		"whole object":            {in: "chart: c\ndrift: {ignore: [{paths: [/]}]}\n", wantErr: `would ignore the whole object`},
		"no paths":                {in: "chart: c\ndrift: {ignore: [{target: {kind: Deployment}}]}\n", wantErr: "field drift.ignore[0].paths is empty"},
		"unknown target key":      {in: "chart: c\ndrift: {ignore: [{paths: [/a], target: {kinds: X}}]}\n", wantErr: "unknown field drift.ignore[0].target.kinds"},
		"rule is a string":        {in: "chart: c\ndrift: {ignore: [/spec/replicas]}\n", wantErr: "field drift.ignore[0] must be a mapping {paths, target}"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := Parse("f.yaml", []byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error %q spans several lines", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Parse (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidateReleaseBehaviourFields(t *testing.T) {
	cases := map[string]struct {
		edit    func(*Release)
		wantErr string
	}{
		"all valid": {edit: func(r *Release) {
			r.Timeout, r.Force, r.Adopt = "2m", true, true
			r.Remediation = &Remediation{Strategy: RemediationRollback, Retries: 10}
			r.Drift = &Drift{Ignore: []DriftIgnore{{Paths: []string{"/spec/replicas"}}}}
		}},
		"bad timeout":       {edit: func(r *Release) { r.Timeout = "soon" }, wantErr: `release "taco": timeout "soon" is not a duration`},
		"empty strategy":    {edit: func(r *Release) { r.Remediation = &Remediation{} }, wantErr: "remediation: strategy is empty"},
		"too many retries":  {edit: func(r *Release) { r.Remediation = &Remediation{Strategy: "rollback", Retries: 50} }, wantErr: "retries 50 is out of range: want 1 to 10"},
		"empty ignore rule": {edit: func(r *Release) { r.Drift = &Drift{Ignore: []DriftIgnore{{}}} }, wantErr: "drift.ignore[0]: paths is empty"},
		"relative pointer": {edit: func(r *Release) { r.Drift = &Drift{Ignore: []DriftIgnore{{Paths: []string{"spec"}}}} },
			wantErr: `drift.ignore[0]: path "spec" is not a JSON pointer`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r := &Release{Name: "taco", Chart: "charts/taco-1.0.0.tgz"}
			tc.edit(r)
			checkErr(t, r.Validate(), tc.wantErr)
		})
	}
}

func TestHealthTimeoutAndRemediationDefaults(t *testing.T) {
	r := &Release{Timeout: "90s"}
	if got := r.HealthTimeout(); got != 90*time.Second {
		t.Errorf("HealthTimeout = %s, want 1m30s", got)
	}
	if got := (&Release{}).HealthTimeout(); got != 0 {
		t.Errorf("HealthTimeout without a timeout = %s, want 0", got)
	}
	var none *Remediation
	if none.Rollback() || (&Remediation{Strategy: RemediationNone}).Rollback() {
		t.Error("no remediation (or none) rolls back")
	}
	if got := (&Remediation{Strategy: RemediationRollback}).Attempts(); got != DefaultRetries {
		t.Errorf("default attempts = %d, want %d", got, DefaultRetries)
	}
	if got := (&Remediation{Strategy: RemediationRollback, Retries: 7}).Attempts(); got != 7 {
		t.Errorf("attempts = %d, want 7", got)
	}
	tgt := &DriftTarget{Kind: "Deployment", Name: "web"}
	if !tgt.Matches("apps", "Deployment", "ns", "web") || tgt.Matches("apps", "Deployment", "ns", "api") || tgt.Matches("", "ConfigMap", "ns", "web") {
		t.Error("target matching is wrong")
	}
	var any *DriftTarget
	if !any.Matches("", "ConfigMap", "x", "y") {
		t.Error("a nil target must match every object")
	}
}

func TestMarshalReleaseBehaviourFields(t *testing.T) {
	r := &Release{
		APIVersion: APIVersion, Kind: KindRelease, Name: "web", Namespace: "shop", Chart: "charts/web-1.0.0.tgz",
		Timeout: "2m", Remediation: &Remediation{Strategy: RemediationRollback, Retries: 4}, Force: true, Adopt: true,
		Drift: &Drift{Ignore: []DriftIgnore{
			{Paths: []string{"/spec/replicas"}, Target: &DriftTarget{Kind: "Deployment", Name: "web"}},
			{Paths: []string{"/data/x", "/metadata/annotations/a~1b"}},
		}},
		Values: map[string]any{"a": "b"},
	}
	out, err := Marshal(r)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	want := `apiVersion: charter.sh/v1
kind: Release
name: web
namespace: shop
chart: charts/web-1.0.0.tgz
timeout: 2m
remediation:
  strategy: rollback
  retries: 4
force: true
adopt: true
drift:
  ignore:
  - paths: [/spec/replicas]
    target: {kind: Deployment, name: web}
  - paths: [/data/x, /metadata/annotations/a~1b]
values:
  a: b
`
	if diff := cmp.Diff(want, string(out)); diff != "" {
		t.Errorf("Marshal (-want +got):\n%s", diff)
	}
	short, err := Marshal(&Release{Chart: "c", Remediation: &Remediation{Strategy: RemediationRollback}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(short), "remediation: rollback\n") {
		t.Errorf("default retries should use the short form:\n%s", short)
	}
}

func TestUpdateAddsBehaviourFieldsKeepingTheFile(t *testing.T) {
	d := newTestDir(t)
	orig := "# web shop\napiVersion: charter.sh/v1\nkind: Release\nname: web\nnamespace: shop\nchart: charts/web-1.0.0.tgz\nvalues:\n  replicaCount: 2 # two\n"
	writeRelease(t, d, "web", []byte(orig))
	if _, err := d.Update(context.Background(), "web", func(r *Release) error {
		r.Force, r.Timeout = true, "3m"
		r.Remediation = &Remediation{Strategy: RemediationRollback}
		r.Drift = &Drift{Ignore: []DriftIgnore{{Paths: []string{"/spec/replicas"}}}}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got := string(readFile(t, d, "releases/web.yaml"))
	want := "# web shop\napiVersion: charter.sh/v1\nkind: Release\nname: web\nnamespace: shop\nchart: charts/web-1.0.0.tgz\n" +
		"timeout: 3m\nremediation: rollback\nforce: true\ndrift:\n  ignore:\n  - paths: [/spec/replicas]\nvalues:\n  replicaCount: 2 # two\n"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("edited file (-want +got):\n%s", diff)
	}
	// And back: removing them restores the original text.
	if _, err := d.Update(context.Background(), "web", func(r *Release) error {
		r.Force, r.Timeout, r.Remediation, r.Drift = false, "", nil, nil
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(orig, string(readFile(t, d, "releases/web.yaml"))); diff != "" {
		t.Errorf("file after removing the fields (-want +got):\n%s", diff)
	}
}
