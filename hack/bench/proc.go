package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat. It
// is 100 on every Linux architecture Go supports.
const clockTicks = 100

// usage is what a tool cost while it ran: the sum of CPU time of its
// processes, the largest peak RSS of any one of them and the largest sum of
// RSS of those running at the same moment (sampled).
type usage struct {
	mu        sync.Mutex
	cpu       time.Duration
	maxRSS    int64 // bytes, the largest VmHWM / ru_maxrss of one process
	peakSum   int64 // bytes, the largest sampled sum over running processes
	procs     int
	failures  []string
	live      map[int]bool
	stopSampl chan struct{}
	sampled   chan struct{}
}

func newUsage() *usage { return &usage{live: map[int]bool{}} }

// sample records the sum of VmRSS of the running processes every 100 ms
// until stop is called.
func (u *usage) sample() (stop func()) {
	u.stopSampl, u.sampled = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(u.sampled)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			u.mu.Lock()
			var sum int64
			for pid := range u.live {
				if st, err := readProcStatus(pid); err == nil {
					sum += st.rss
				}
			}
			u.peakSum = max(u.peakSum, sum)
			u.mu.Unlock()
			select {
			case <-u.stopSampl:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(u.stopSampl); <-u.sampled }
}

// peakRSS is the memory the tool needed at once: the sampled sum of its
// concurrent processes, or its largest single process when that is higher
// (a short process can end between two samples).
func (u *usage) peakRSS() int64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return max(u.peakSum, u.maxRSS)
}

func (u *usage) add(cpu time.Duration, rss int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.cpu += cpu
	u.maxRSS = max(u.maxRSS, rss)
}

func (u *usage) fail(msg string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.failures = append(u.failures, msg)
}

// failed summarises failures: the first message and how many more.
func (u *usage) failed() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	switch len(u.failures) {
	case 0:
		return ""
	case 1:
		return u.failures[0]
	}
	return fmt.Sprintf("%s (and %d more failures)", u.failures[0], len(u.failures)-1)
}

// command is one process to run.
type command struct {
	name string   // short name for logs (helm, kubectl, charter)
	path string   // binary
	args []string // arguments
	env  []string // added to the harness's environment
	dir  string   // working folder (default: the harness's)
	log  string   // file the output is appended to (default: discarded)
}

// run runs c to completion, adding its CPU time and peak RSS to u (when
// not nil). It returns the process's combined output (last 4 KiB) with the
// error when it fails.
func (c command) run(ctx context.Context, u *usage) ([]byte, error) {
	cmd := exec.CommandContext(ctx, c.path, c.args...)
	cmd.Env = append(os.Environ(), c.env...)
	cmd.Dir = c.dir
	var out tailBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", c.name, err)
	}
	if u != nil {
		u.mu.Lock()
		u.live[cmd.Process.Pid] = true
		u.procs++
		u.mu.Unlock()
	}
	err := cmd.Wait()
	if u != nil {
		u.mu.Lock()
		delete(u.live, cmd.Process.Pid)
		u.mu.Unlock()
		if st := cmd.ProcessState; st != nil {
			u.add(st.UserTime()+st.SystemTime(), maxRSSOf(st))
		}
	}
	if c.log != "" {
		appendLog(c.log, c, out.Bytes())
	}
	if err != nil {
		return out.Bytes(), fmt.Errorf("%s %s: %w: %s", c.name, strings.Join(c.args[:min(len(c.args), 2)], " "), err, lastLine(out.Bytes()))
	}
	return out.Bytes(), nil
}

// maxRSSOf reads ru_maxrss (KiB on Linux) of an exited process.
func maxRSSOf(st *os.ProcessState) int64 {
	if ru, ok := st.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss * 1024
	}
	return 0
}

func appendLog(path string, c command, out []byte) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "$ %s %s\n%s\n", filepath.Base(c.path), strings.Join(c.args, " "), out)
}

// lastLine is the last non-empty line of a tool's output, for one-line errors.
func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// tailBuffer keeps the last 4 KiB written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 4096 {
		t.buf = t.buf[len(t.buf)-4096:]
	}
	return len(p), nil
}

func (t *tailBuffer) Bytes() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return bytes.Clone(t.buf)
}

// procStatus is what /proc/PID/status and /proc/PID/stat tell of a process.
type procStatus struct {
	rss, hwm int64         // bytes: resident now, and its peak (VmHWM)
	cpu      time.Duration // utime + stime
}

func readProcStatus(pid int) (procStatus, error) {
	var st procStatus
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return st, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch k {
		case "VmRSS":
			st.rss = parseKB(v)
		case "VmHWM":
			st.hwm = parseKB(v)
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return st, err
	}
	st.cpu, err = parseStatCPU(string(stat))
	return st, err
}

// parseKB reads "   91992 kB".
func parseKB(v string) int64 {
	f := strings.Fields(v)
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.ParseInt(f[0], 10, 64)
	return n * 1024
}

// parseStatCPU returns utime+stime from a /proc/PID/stat line. The command
// name (field 2) may hold spaces and parentheses, so fields are counted
// from the last ')'.
func parseStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc/PID/stat")
	}
	f := strings.Fields(stat[i+1:])
	// After the name: state(3) ppid(4) … utime(14) stime(15), so index 11 and 12.
	if len(f) < 13 {
		return 0, errors.New("malformed /proc/PID/stat: too few fields")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	stt, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("malformed /proc/PID/stat: %w", err)
	}
	return time.Duration(ut+stt) * time.Second / clockTicks, nil
}

// resetPeakRSS makes the kernel restart VmHWM of pid from its current RSS
// (echo 5 > /proc/PID/clear_refs), so a phase's peak can be read alone.
func resetPeakRSS(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0o200)
}
