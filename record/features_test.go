package record

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestRollbackAndDriftRoundTripAndStayOptional(t *testing.T) {
	rev := &Revision{Release: "web", Revision: 5, Status: StatusDeployed,
		RolledBack: &Rollback{To: 1, Failed: 4, DesiredDigest: "sha256:aa", Attempts: 2},
		LastDrift: &Drift{Time: time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC), Action: DriftCorrected, Objects: []DriftedObject{
			{Object: "Deployment/shop/web", Fields: []string{"/spec/replicas"}, Managers: []string{"kubectl-edit"}},
			{Object: "ConfigMap/shop/web", Deleted: true},
		}}}
	data, err := encode(rev)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rev, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}

	// Records written before these fields existed read as before, and
	// revisions without them encode without them.
	plain, _ := json.Marshal(&Revision{Release: "web", Revision: 1})
	for _, f := range []string{"rolledBack", "lastDrift"} {
		if strings.Contains(string(plain), f) {
			t.Errorf("a revision without %s encodes it: %s", f, plain)
		}
	}
	var old Revision
	if err := json.Unmarshal([]byte(`{"release":"web","revision":1,"status":"deployed","manifest":"","inventory":[]}`), &old); err != nil {
		t.Fatal(err)
	}
	if old.RolledBack != nil || old.LastDrift != nil {
		t.Errorf("an old record decoded with rollback or drift: %+v", old)
	}
}

func TestDriftedObjectString(t *testing.T) {
	for want, o := range map[string]DriftedObject{
		"Deployment/shop/web /spec/replicas, /spec/paused changed by kubectl-edit": {Object: "Deployment/shop/web", Fields: []string{"/spec/replicas", "/spec/paused"}, Managers: []string{"kubectl-edit"}},
		"ConfigMap/shop/web deleted": {Object: "ConfigMap/shop/web", Deleted: true},
		"Secret/shop/x changed":      {Object: "Secret/shop/x"},
	} {
		if got := o.String(); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
	}
}
