package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// component is one control-plane program to run.
type component struct {
	name    string
	binary  string
	args    []string
	env     []string // added to the caller's environment
	logPath string
}

// process is a started component. done is closed when the process has
// exited; it is nil for processes recorded by another program (Shutdown).
type process struct {
	name    string
	binary  string
	logPath string
	pid     int
	done    chan struct{}
	waitErr error     // valid once done is closed
	comp    component // how it was started, to start it again (StartAPIServer)
}

// startProcess runs c with its output appended to c.logPath. Detached
// processes get their own session and survive the caller; attached ones get
// their own process group and are killed when the caller dies.
func startProcess(c component, detach bool) (*process, error) {
	logFile, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s log: %w", c.name, err)
	}
	defer logFile.Close() // the child holds its own descriptor

	cmd := exec.Command(c.binary, c.args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Env = append(os.Environ(), c.env...)
	cmd.SysProcAttr = sysProcAttr(detach)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", c.name, err)
	}
	p := &process{
		name:    c.name,
		binary:  c.binary,
		logPath: c.logPath,
		pid:     cmd.Process.Pid,
		done:    make(chan struct{}),
		comp:    c,
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process is gone (or is a zombie).
func (p *process) exited() bool {
	if p.done != nil {
		select {
		case <-p.done:
			return true
		default:
			return false
		}
	}
	return !processAlive(p.pid)
}

// exitStatus describes how an exited child ended, for error messages.
func (p *process) exitStatus() string {
	if p.done == nil {
		return "exited"
	}
	var exitErr *exec.ExitError
	if errors.As(p.waitErr, &exitErr) {
		return exitErr.ProcessState.String()
	}
	if p.waitErr != nil {
		return p.waitErr.Error()
	}
	return "exited with status 0"
}

// stopProcesses stops procs in reverse start order, so clients go before
// the API server and the API server before etcd (an API server whose etcd
// is gone takes seconds to shut down). Each gets SIGTERM, then SIGKILL if it
// is still running after grace.
func stopProcesses(procs []*process, grace time.Duration) error {
	var alive []string
	for i := len(procs) - 1; i >= 0; i-- {
		p := procs[i]
		if stopProcess(p, syscall.SIGTERM, grace) || stopProcess(p, syscall.SIGKILL, 5*time.Second) {
			continue
		}
		alive = append(alive, fmt.Sprintf("%s (pid %d)", p.name, p.pid))
	}
	if len(alive) > 0 {
		return fmt.Errorf("stop control plane: still running after SIGKILL: %s", strings.Join(alive, ", "))
	}
	return nil
}

// stopProcess signals p's process group and reports whether p exited
// within wait.
func stopProcess(p *process, sig syscall.Signal, wait time.Duration) bool {
	if p.exited() {
		return true
	}
	// Negative pid: the whole group, so helpers a component forked go too.
	_ = syscall.Kill(-p.pid, sig)
	_ = syscall.Kill(p.pid, sig)
	deadline := time.Now().Add(wait)
	for !p.exited() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// processAlive reports whether pid names a running, non-zombie process.
func processAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	// Format: "pid (comm) state ..."; comm may contain spaces or parentheses.
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}

// processIs reports whether pid is still running binary, so that a PID
// recorded long ago and reused by an unrelated program is never signalled.
// Where /proc is unavailable it trusts the PID.
func processIs(pid int, binary string) bool {
	if !processAlive(pid) {
		return false
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return errors.Is(err, os.ErrNotExist) && !procMounted()
	}
	return strings.TrimSuffix(exe, " (deleted)") == binary
}

func procMounted() bool {
	_, err := os.Stat("/proc/self/exe")
	return err == nil
}

// logTail returns the last n lines of the file at path.
func logTail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	const maxBytes = 16 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > maxBytes {
		if _, err := f.Seek(fi.Size()-maxBytes, io.SeekStart); err != nil {
			return fmt.Sprintf("(read log: %v)", err)
		}
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(read log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
