package state

import (
	"strings"
	"testing"
)

func TestValidateName(t *testing.T) {
	cases := map[string]struct {
		name    string
		wantErr string
	}{
		"simple":         {name: "taco-tuesday"},
		"digits":         {name: "0abc9"},
		"53 characters":  {name: strings.Repeat("a", 53)},
		"empty":          {name: "", wantErr: "release name is empty"},
		"54 characters":  {name: strings.Repeat("a", 54), wantErr: "is 54 characters long: must be at most 53"},
		"upper case":     {name: "Taco", wantErr: `release name "Taco" is invalid: must be a DNS-1123 label`},
		"leading dash":   {name: "-taco", wantErr: "is invalid"},
		"trailing dash":  {name: "taco-", wantErr: "is invalid"},
		"dot":            {name: "taco.tuesday", wantErr: "is invalid"},
		"path traversal": {name: "../etc", wantErr: "is invalid"},
		"underscore":     {name: "taco_tuesday", wantErr: "is invalid"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := ValidateName(tc.name)
			checkErr(t, err, tc.wantErr)
		})
	}
}

func TestReleaseValidate(t *testing.T) {
	valid := func() *Release {
		return &Release{Name: "taco", Chart: "charts/taco-1.0.0.tgz"}
	}
	cases := map[string]struct {
		edit    func(*Release)
		wantErr string
	}{
		"minimal": {edit: func(*Release) {}},
		"everything set": {edit: func(r *Release) {
			*r = Release{APIVersion: APIVersion, Kind: KindRelease, Name: "taco", Namespace: "food", Chart: "mychart", Version: "^1.2", ChartPath: "/src/x", ValuesFiles: []string{"values/a.yaml"}, Values: map[string]any{"a": 1}}
		}},
		"repository chart reference":           {edit: func(r *Release) { r.Chart = "oci://registry.example/charts/taco" }},
		"bad name":                             {edit: func(r *Release) { r.Name = "Taco" }, wantErr: `release name "Taco" is invalid`},
		"bad namespace":                        {edit: func(r *Release) { r.Namespace = "Food_1" }, wantErr: `release "taco": namespace "Food_1" is invalid`},
		"long namespace":                       {edit: func(r *Release) { r.Namespace = strings.Repeat("n", 64) }, wantErr: "must be at most 63"},
		"no chart":                             {edit: func(r *Release) { r.Chart = " " }, wantErr: `release "taco": chart is empty`},
		"chart above the folder holding state": {edit: func(r *Release) { r.Chart = "../../x.tgz" }, wantErr: `chart "../../x.tgz" points outside the folder holding the state directory`},
		"absolute chart":                       {edit: func(r *Release) { r.Chart = "/tmp/x.tgz" }, wantErr: `chart "/tmp/x.tgz" is an absolute path`},
		"bad version constraint":               {edit: func(r *Release) { r.Version = ">=banana" }, wantErr: `version ">=banana" is not a valid semver constraint`},
		"absolute values file":                 {edit: func(r *Release) { r.ValuesFiles = []string{"/etc/passwd"} }, wantErr: `valuesFiles entry "/etc/passwd" is an absolute path`},
		"values file escaping":                 {edit: func(r *Release) { r.ValuesFiles = []string{"values/../../x.yaml"} }, wantErr: "points outside the state directory"},
		"empty values file":                    {edit: func(r *Release) { r.ValuesFiles = []string{""} }, wantErr: "valuesFiles entry is empty"},
		"wrong apiVersion":                     {edit: func(r *Release) { r.APIVersion = "v1" }, wantErr: `apiVersion "v1" is not supported`},
		"wrong kind":                           {edit: func(r *Release) { r.Kind = "State" }, wantErr: `kind "State" is not supported`},
		"values YAML cannot hold":              {edit: func(r *Release) { r.Values = map[string]any{"f": func() {}} }, wantErr: "values: cannot be represented as YAML"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r := valid()
			tc.edit(r)
			checkErr(t, r.Validate(), tc.wantErr)
		})
	}
}

// checkErr fails unless err is nil (wantErr "") or a one-line error
// containing wantErr.
func checkErr(t *testing.T, err error, wantErr string) {
	t.Helper()
	if wantErr == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error, want one containing %q", wantErr)
	}
	if !strings.Contains(err.Error(), wantErr) {
		t.Fatalf("error = %q, want one containing %q", err, wantErr)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error %q spans several lines", err)
	}
}
