package reconcile

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/charter-sh/charter/record"
	"github.com/charter-sh/charter/state"
)

// cycles returns, for every release on a dependsOn cycle, the cycle as
// "a → b → a".
func cycles(rels []*state.Release) map[string]string {
	deps := map[string][]string{}
	for _, r := range rels {
		deps[r.Name] = r.DependsOn
	}
	out := map[string]string{}
	const (
		unseen = iota
		onPath
		done
	)
	mark := map[string]int{}
	var path []string
	var visit func(n string)
	visit = func(n string) {
		mark[n] = onPath
		path = append(path, n)
		for _, d := range deps[n] {
			if _, declared := deps[d]; !declared {
				continue // reported when reconciling n
			}
			switch mark[d] {
			case onPath:
				i := len(path) - 1
				for path[i] != d {
					i--
				}
				loop := append(append([]string{}, path[i:]...), d)
				for _, m := range path[i:] {
					if _, ok := out[m]; !ok {
						out[m] = strings.Join(loop, " → ")
					}
				}
			case unseen:
				visit(d)
			}
		}
		path = path[:len(path)-1]
		mark[n] = done
	}
	names := make([]string, 0, len(deps))
	for n := range deps {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if mark[n] == unseen {
			visit(n)
		}
	}
	return out
}

// waves orders names so that every release comes after the releases it
// depends on: each wave may run concurrently. Dependencies outside names
// are ignored here (the dependencies step checks them).
func waves(names []string, dependsOn func(string) []string) [][]string {
	in := map[string]bool{}
	for _, n := range names {
		in[n] = true
	}
	level := map[string]int{}
	var depth func(n string, seen map[string]bool) int
	depth = func(n string, seen map[string]bool) int {
		if l, ok := level[n]; ok {
			return l
		}
		if seen[n] {
			return 0 // a cycle: reported elsewhere, never reconciled
		}
		seen[n] = true
		l := 0
		for _, d := range dependsOn(n) {
			if in[d] {
				l = max(l, depth(d, seen)+1)
			}
		}
		level[n] = l
		return l
	}
	var out [][]string
	for _, n := range names {
		l := depth(n, map[string]bool{})
		for len(out) <= l {
			out = append(out, nil)
		}
		out[l] = append(out[l], n)
	}
	return out
}

// WaitingError says a release is held back (a dependency is not deployed
// yet). Nothing is recorded for it; it is retried like a transient error.
type WaitingError struct{ Err error }

func (e *WaitingError) Error() string { return e.Err.Error() }
func (e *WaitingError) Unwrap() error { return e.Err }

// dependencies holds a release back until every release it depends on is
// deployed: the newest revision of each is deployed (so it was healthy).
// A dependency that is not declared at all is a permanent error; one still
// converging is a transient one, retried.
func (r *Reconciler) dependencies(ctx context.Context, ru *run) error {
	for _, d := range ru.decl.DependsOn {
		if _, err := r.State.Lookup(ctx, d); errors.Is(err, state.ErrNotFound) {
			return &PermanentError{fmt.Errorf("depends on release %q, which is not declared", d)}
		}
		h, err := r.Records.History(ctx, d)
		if errors.Is(err, record.ErrNotFound) {
			return &WaitingError{fmt.Errorf("waiting for dependency %q: not applied yet", d)}
		}
		if err != nil {
			return ServerError(r.Cluster.Config.Host, err)
		}
		if last := h[len(h)-1]; last.Status != record.StatusDeployed {
			return &WaitingError{fmt.Errorf("waiting for dependency %q: %s", d, last.Status)}
		}
	}
	return nil
}
