package testenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// StateFile is the file, inside an environment's folder, recording the
// processes that belong to it. Shutdown refuses to remove a folder without it.
const StateFile = "controlplane.json"

// stopGrace is how long components get to exit after SIGTERM.
const stopGrace = 5 * time.Second

type state struct {
	Components []stateComponent `json:"components"`
}

type stateComponent struct {
	Name   string `json:"name"`
	PID    int    `json:"pid"`
	Binary string `json:"binary"`
	Log    string `json:"log"`
}

// writeState records procs in dir atomically (temp file, then rename), so
// a crash at any point leaves either the old or the new list.
func writeState(dir string, procs []*process) error {
	var s state
	for _, p := range procs {
		s.Components = append(s.Components, stateComponent{Name: p.name, PID: p.pid, Binary: p.binary, Log: p.logPath})
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode control-plane state: %w", err)
	}
	return writeFileAtomic(filepath.Join(dir, StateFile), append(data, '\n'), 0o644)
}

func readState(dir string) (state, error) {
	var s state
	data, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		return s, fmt.Errorf("read control-plane state: %w", err)
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return s, fmt.Errorf("parse control-plane state %s: %w", filepath.Join(dir, StateFile), err)
	}
	return s, nil
}

// recordedProcesses returns the processes recorded in dir that still run
// the recorded binary.
func recordedProcesses(dir string) ([]*process, error) {
	s, err := readState(dir)
	if err != nil {
		return nil, err
	}
	var procs []*process
	for _, c := range s.Components {
		if c.PID > 0 && processIs(c.PID, c.Binary) {
			procs = append(procs, &process{name: c.Name, binary: c.Binary, logPath: c.Log, pid: c.PID})
		}
	}
	return procs, nil
}

// Running reports the names of the components recorded in dir that are
// still running. A folder that does not exist has none.
func Running(dir string) ([]string, error) {
	if _, err := os.Stat(filepath.Join(dir, StateFile)); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	procs, err := recordedProcesses(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, p := range procs {
		names = append(names, p.name)
	}
	return names, nil
}

// Shutdown stops the processes recorded in dir (by Start, usually in
// detached mode from another program) and removes dir. A dir that does not
// exist is already shut down. A dir without StateFile is left untouched and
// reported as an error, so a mistyped path never deletes unrelated files.
func Shutdown(ctx context.Context, dir string) error {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if _, err := os.Stat(filepath.Join(dir, StateFile)); err != nil {
		return fmt.Errorf("shut down control plane: %s has no %s, not removing it: %w", dir, StateFile, err)
	}
	procs, err := recordedProcesses(dir)
	if err != nil {
		return fmt.Errorf("shut down control plane: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("shut down control plane: %w", err)
	}
	if err := stopProcesses(procs, stopGrace); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove control-plane data: %w", err)
	}
	return nil
}

func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
