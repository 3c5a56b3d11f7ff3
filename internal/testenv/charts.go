package testenv

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// SharedChartsEnv overrides where the public charts used by compatibility
// tests are found.
const SharedChartsEnv = "CHARTER_SHARED_CHARTS"

// SharedCharts returns the folder of public charts for compatibility tests:
// $CHARTER_SHARED_CHARTS, else ../shared/charts beside the repository. The
// charts are fixtures kept outside the repository, so a checkout without
// them skips these tests (with the reason in the log) rather than failing;
// where they are present every mismatch fails.
func SharedCharts(t testing.TB) string {
	t.Helper()
	dir := os.Getenv(SharedChartsEnv)
	if dir == "" {
		root, err := repoRoot()
		if err != nil {
			t.Skipf("shared charts: %v", err)
		}
		dir = filepath.Join(filepath.Dir(root), "shared", "charts")
	}
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("shared charts not found at %s (set %s to their folder to run this test)", dir, SharedChartsEnv)
	}
	return dir
}

// repoRoot walks up from the working directory (a package folder under
// go test) to the folder holding the main module's go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && !isSubmodule(b) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", os.ErrNotExist
		}
		dir = parent
	}
}

// isSubmodule tells a nested module (hack/controlplane) from charter's own.
func isSubmodule(gomod []byte) bool {
	return !bytes.Contains(gomod, []byte("module github.com/charter-sh/charter\n"))
}
