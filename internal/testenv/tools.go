package testenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// ToolsEnv is the environment variable naming the tools cache folder.
const ToolsEnv = "CHARTER_TOOLS"

// StagesDir is the folder, inside the tools cache, holding the kwok Stage
// YAML files that decide how fake nodes and pods behave.
const StagesDir = "kwok-stages"

// ErrToolsMissing is returned (wrapped) by CheckTools and Start when a
// binary or the kwok stages are not in the tools cache.
var ErrToolsMissing = errors.New("control-plane tools missing")

// binaries the control plane needs, by file name in the tools cache.
const (
	binEtcd              = "etcd"
	binAPIServer         = "kube-apiserver"
	binControllerManager = "kube-controller-manager"
	binScheduler         = "kube-scheduler"
	binKwok              = "kwok"
)

var requiredBinaries = []string{binEtcd, binAPIServer, binControllerManager, binScheduler, binKwok}

// ToolsDir returns the tools cache folder: $CHARTER_TOOLS when set,
// otherwise $HOME/.cache/charter/tools.
func ToolsDir() string {
	if d := os.Getenv(ToolsEnv); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "charter-tools")
	}
	return filepath.Join(home, ".cache", "charter", "tools")
}

// CheckTools reports, as an error wrapping ErrToolsMissing, the first
// binary or the kwok stages missing from dir. It does not run anything.
func CheckTools(dir string) error {
	for _, name := range requiredBinaries {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
			return fmt.Errorf("%w in %s: no executable %s; run `make tools`", ErrToolsMissing, dir, name)
		}
	}
	if _, err := stageFiles(dir); err != nil {
		return err
	}
	return nil
}

// stageFiles lists the kwok Stage files in the tools cache, sorted.
func stageFiles(dir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, StagesDir, "*.yaml"))
	if err != nil {
		return nil, fmt.Errorf("list kwok stages: %w", err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%w in %s: no kwok stages in %s; run `make tools`", ErrToolsMissing, dir, StagesDir)
	}
	sort.Strings(files)
	return files, nil
}

// Tool returns the path of a tool `make tools` builds (what names it in
// messages). Without it t is skipped, or fails when CHARTER_E2E=1; with
// -short t is skipped.
func Tool(t testing.TB, name, what string) string {
	t.Helper()
	if testing.Short() {
		t.Skipf("needs %s; skipped with -short", what)
	}
	bin := filepath.Join(ToolsDir(), name)
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		msg := fmt.Sprintf("no %s at %s; run `make tools`", what, bin)
		if os.Getenv(E2EEnv) == "1" {
			t.Fatalf("testenv: %s (%s=1 requires it)", msg, E2EEnv)
		}
		t.Skip(msg)
	}
	return bin
}
