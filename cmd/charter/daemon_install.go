package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/fluxcd/pkg/ssa"
	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/charter-sh/charter/reconcile"
	"github.com/charter-sh/charter/record"
	"github.com/charter-sh/charter/source"
)

// What `charter daemon install` creates. Every object carries
// installLabels; uninstall finds them by that selector, per kind.
const (
	installManagedBy   = "charter-install"
	labelManagedBy     = "app.kubernetes.io/managed-by"
	labelName          = "app.kubernetes.io/name"
	labelInstance      = "app.kubernetes.io/instance" // the install namespace: scopes cluster-wide objects
	daemonName         = "charter-daemon"
	daemonSA           = "charter"
	daemonPort         = 9292
	daemonLeaseName    = "charter-daemon" // reconcile.Heartbeat's Lease
	daemonSourcesAnnot = "charter.sh/sources"
	defaultImageRepo   = "ghcr.io/charter-sh/charter"
)

// installedKinds are the kinds install creates, in the order uninstall
// deletes them. The Namespace is never deleted: it holds the release
// records and the credentials.
var installedKinds = []struct {
	gvk        schema.GroupVersionKind
	namespaced bool
}{
	{schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}, true},
	{schema.GroupVersionKind{Version: "v1", Kind: "Service"}, true},
	{schema.GroupVersionKind{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRoleBinding"}, false},
	{schema.GroupVersionKind{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRole"}, false},
	{schema.GroupVersionKind{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "RoleBinding"}, true},
	{schema.GroupVersionKind{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "Role"}, true},
	{schema.GroupVersionKind{Version: "v1", Kind: "ServiceAccount"}, true},
	{schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, true},
	// Only the Secrets install wrote (copied credentials, ssh key, webhook
	// secret) carry its labels; records and the user's credentials do not.
	{schema.GroupVersionKind{Version: "v1", Kind: "Secret"}, true},
}

type daemonInstallOptions struct {
	namespace    string
	image        string
	sources      []string
	clusterAdmin bool
	dryRun       bool
	replicas     int // one leads, the others stand by

	credentials       []string // SOURCE=CREDENTIAL
	sshKeyFile        string
	knownHostsFile    string
	webhookSecretFile string
	interval          time.Duration
	allowEmpty        bool
}

// installNamespace is --namespace, else the records namespace, so that the
// daemon keeps its records and heartbeat where the CLI looks for them.
func (g *globalOptions) installNamespace(ns string) string {
	if ns != "" {
		return ns
	}
	if g.recordsNS != "" {
		return g.recordsNS
	}
	return record.DefaultNamespace
}

func newDaemonInstallCmd(g *globalOptions) *cobra.Command {
	o := &daemonInstallOptions{}
	cmd := &cobra.Command{
		Use:   "install [--source URL...] [--namespace charter-system]",
		Short: "Install the daemon in the cluster of the current kubeconfig",
		Long: `Install server-side applies (field manager "charter") what the daemon needs in the cluster:
its Namespace, a ServiceAccount "charter", RBAC, a Deployment running "charter daemon run"
and a Service on port 9292 (webhooks POST /hooks/NAME, /healthz, /readyz). Running it again
changes only what differs; every object is labelled app.kubernetes.io/managed-by=charter-install.

Sources are the --source URLs (git or bucket URLs: a local folder means nothing inside the
cluster), else the --state URL. They are written to a daemon config file in the ConfigMap
charter-daemon-config. Their credentials become Secrets the daemon reads:
  --credential SOURCE=NAME   a credential of the cluster store (charter credential add) for a
                             source (its name or URL; --state-credential does it for --state);
                             copied into --namespace when the store is in another namespace
  --ssh-key, --known-hosts   git over ssh: Secret charter-daemon-ssh, mounted read-only
  --webhook-secret-file      the webhooks' HMAC secret: Secret charter-daemon-webhook
The daemon's records and heartbeat Lease live in its namespace too.

RBAC: a GitOps reconciler must be able to manage whatever the releases contain, so a
ClusterRole is unavoidable. By default it covers the common kinds of charts (core workloads
and config, apps, batch, ingresses and network policies, namespaced RBAC, PDBs, HPAs, and
reading CRDs); with --cluster-admin it may manage every resource. A Role in charter's namespace
covers its own Secrets (records, credentials) and Leases (heartbeat).

--dry-run prints the manifests as YAML (Secret values REDACTED) and changes nothing.`,
		Example: `  charter daemon install --source https://git.example.com/team/state.git?ref=main
  charter daemon install --state s3://charts-bucket/state --image registry.local/charter:1.2.0
  charter daemon install --source https://git.example.com/team/state.git --dry-run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return daemonInstall(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.namespace, "namespace", "", "charter's namespace (default: --records-namespace, charter-system)")
	f.StringVar(&o.image, "image", "", "daemon image (default: "+defaultImageRepo+":"+version+")")
	f.StringArrayVar(&o.sources, "source", nil, "a git or bucket URL the daemon follows (repeatable; NAME=URL names its webhook; default: --state)")
	f.BoolVar(&o.clusterAdmin, "cluster-admin", false, "let the daemon manage every resource kind (needed for charts with arbitrary CRs or cluster-wide RBAC)")
	f.BoolVar(&o.dryRun, "dry-run", false, "print the manifests as YAML (secret values redacted); change nothing")
	f.StringArrayVar(&o.credentials, "credential", nil, "SOURCE=CREDENTIAL: the cluster credential a source (name or URL) is fetched with (repeatable)")
	f.StringVar(&o.sshKeyFile, "ssh-key", "", "private key file for git over ssh, stored as a Secret")
	f.StringVar(&o.knownHostsFile, "known-hosts", "", "known_hosts file for git over ssh, stored with the key")
	f.StringVar(&o.webhookSecretFile, "webhook-secret-file", "", "file holding the webhooks' HMAC secret, stored as a Secret")
	f.DurationVar(&o.interval, "interval", 0, "how often the daemon polls its sources (default: the daemon's, 1m)")
	f.BoolVar(&o.allowEmpty, "allow-empty", false, "let a source that declares no release any more uninstall its releases")
	f.IntVar(&o.replicas, "replicas", 1, "daemon replicas: the one holding the Lease charter-daemon-leader reconciles, the others stand by (not ready) to take over")
	return cmd
}

// daemonSources are the sources the in-cluster daemon follows.
func (g *globalOptions) daemonSources(o *daemonInstallOptions) ([]string, error) {
	srcs := o.sources
	if len(srcs) == 0 && g.statePath != "" {
		srcs = []string{g.statePath}
	}
	if len(srcs) == 0 {
		return nil, fmt.Errorf("no source for the daemon: pass --source URL or --state URL (a git or bucket URL)")
	}
	for _, s := range srcs {
		loc := s
		if name, l, ok := strings.Cut(s, "="); ok && !strings.Contains(name, "/") && !strings.Contains(name, ":") {
			loc = l
		}
		if source.Redact(loc) != loc {
			return nil, fmt.Errorf("source %s holds credentials: store them with charter credential add instead", source.Redact(loc))
		}
		if source.KindOf(loc, func(string) bool { return false }) == source.KindDir {
			return nil, fmt.Errorf("source %s is a local folder: the in-cluster daemon needs a git or bucket URL", loc)
		}
	}
	return srcs, nil
}

func daemonInstall(ctx context.Context, g *globalOptions, o *daemonInstallOptions) error {
	if o.replicas < 1 {
		return fmt.Errorf("--replicas %d: want at least 1", o.replicas)
	}
	ns := g.installNamespace(o.namespace)
	srcs, err := g.daemonSources(o)
	if err != nil {
		return err
	}
	image := o.image
	if image == "" {
		image = defaultImageRepo + ":" + version
	}
	ic, err := g.buildInstallConfig(ctx, o, ns, srcs)
	if err != nil {
		return err
	}
	objs, err := g.installObjects(ns, image, ic, o.clusterAdmin)
	if err != nil {
		return err
	}
	setReplicas(objs, o.replicas)
	if o.dryRun {
		return writeManifests(g.out, objs)
	}
	c, err := g.clusterClient()
	if err != nil {
		return err
	}
	opts := ssa.DefaultApplyOptions()
	opts.WaitTimeout = g.requestTimeout
	cs, err := c.Manager.ApplyAllStaged(ctx, objs, opts)
	if cs != nil {
		for _, e := range cs.Entries {
			fmt.Fprintf(g.out, "%s %s\n", e.Action, e.Subject)
		}
	}
	if err != nil {
		return fmt.Errorf("install daemon in %s: %w", ns, reconcile.ServerError(c.Config.Host, err))
	}
	if len(ic.config.Sources) > 0 {
		for _, s := range ic.config.Sources {
			if s.Credential != "" {
				g.progress("Source %s uses credential %s (from the credential store in %s).", s.Name, s.Credential, ns)
			}
		}
	}
	return nil
}

// writeManifests prints objects as a YAML stream.
func writeManifests(w io.Writer, objs []*unstructured.Unstructured) error {
	for _, u := range objs {
		b, err := yaml.Marshal(u.Object)
		if err != nil {
			return fmt.Errorf("encode %s/%s: %w", u.GetKind(), u.GetName(), err)
		}
		if _, err := fmt.Fprintf(w, "---\n%s", b); err != nil {
			return err
		}
	}
	return nil
}

func installLabels(ns string) map[string]any {
	return map[string]any{labelManagedBy: installManagedBy, labelName: daemonName, labelInstance: ns}
}

func newObject(apiVersion, kind, ns, name string, fields map[string]any) *unstructured.Unstructured {
	meta := map[string]any{"name": name, "labels": installLabels(ns)}
	obj := map[string]any{"apiVersion": apiVersion, "kind": kind, "metadata": meta}
	for k, v := range fields {
		obj[k] = v
	}
	return &unstructured.Unstructured{Object: obj}
}

// rule is one RBAC policy rule.
func rule(groups, resources, verbs []string) map[string]any {
	return map[string]any{"apiGroups": toAny(groups), "resources": toAny(resources), "verbs": toAny(verbs)}
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

var manageVerbs = []string{"get", "list", "watch", "create", "update", "patch", "delete"}

// daemonClusterRules is the default, least-privilege ClusterRole: what the
// releases of common charts contain. Each rule says why.
func daemonClusterRules(clusterAdmin bool) []any {
	if clusterAdmin {
		// Asked for with --cluster-admin: releases may contain any kind.
		return []any{rule([]string{"*"}, []string{"*"}, manageVerbs)}
	}
	return []any{
		// Workload config and plumbing of charts; namespaces a release
		// targets are created by the reconciler; events it reads for status.
		rule([]string{""}, []string{"configmaps", "secrets", "services", "serviceaccounts", "namespaces", "events"}, manageVerbs),
		// Workloads: apply them and read their status for health checks.
		rule([]string{"apps"}, []string{"deployments", "statefulsets", "daemonsets", "replicasets"}, manageVerbs),
		// Batch workloads (hooks, migrations, scheduled tasks).
		rule([]string{"batch"}, []string{"jobs", "cronjobs"}, manageVerbs),
		// Ingress and network policy objects of charts.
		rule([]string{"networking.k8s.io"}, []string{"ingresses", "networkpolicies"}, manageVerbs),
		// Namespaced RBAC of charts only: no ClusterRoles or bindings, so
		// the daemon cannot escalate cluster-wide (use --cluster-admin).
		rule([]string{"rbac.authorization.k8s.io"}, []string{"roles", "rolebindings"}, manageVerbs),
		// Disruption budgets of charts.
		rule([]string{"policy"}, []string{"poddisruptionbudgets"}, manageVerbs),
		// Autoscalers of charts.
		rule([]string{"autoscaling"}, []string{"horizontalpodautoscalers"}, manageVerbs),
		// Reading CRDs tells which kinds the server serves; never writes them.
		rule([]string{"apiextensions.k8s.io"}, []string{"customresourcedefinitions"}, []string{"get", "list"}),
	}
}

// installObjects builds what install applies, in apply order.
func (g *globalOptions) installObjects(ns, image string, ic *installConfig, clusterAdmin bool) ([]*unstructured.Unstructured, error) {
	clusterName := daemonName + "-" + ns // cluster-wide names are per install namespace
	args := []string{"daemon", "run", "--listen", fmt.Sprintf(":%d", daemonPort), "--log-json",
		"--records-namespace", ns, "--cache-dir", "/var/cache/charter", "--config", daemonConfigFile}
	if g.src.endpoint != "" {
		args = append(args, "--s3-endpoint", g.src.endpoint)
	}
	if g.src.region != "" {
		args = append(args, "--s3-region", g.src.region)
	}
	podLabels := installLabels(ns)
	selector := map[string]any{labelName: daemonName, labelInstance: ns}
	probe := func(path string) map[string]any {
		return map[string]any{
			"httpGet":       map[string]any{"path": path, "port": "http"},
			"periodSeconds": int64(10), "failureThreshold": int64(3),
		}
	}
	subject := []any{map[string]any{"kind": "ServiceAccount", "name": daemonSA, "namespace": ns}}

	nsObj := newObject("v1", "Namespace", "", ns, nil)
	nsObj.SetLabels(map[string]string{labelManagedBy: installManagedBy, labelName: daemonName, labelInstance: ns})
	objs := []*unstructured.Unstructured{
		nsObj,
		newObject("v1", "ServiceAccount", ns, daemonSA, nil),
		newObject("rbac.authorization.k8s.io/v1", "ClusterRole", ns, clusterName, map[string]any{
			"rules": daemonClusterRules(clusterAdmin),
		}),
		newObject("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", ns, clusterName, map[string]any{
			"roleRef":  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": clusterName},
			"subjects": subject,
		}),
		newObject("rbac.authorization.k8s.io/v1", "Role", ns, daemonName, map[string]any{
			"rules": []any{
				// Release records and the credential store are Secrets here.
				rule([]string{""}, []string{"secrets"}, manageVerbs),
				// The heartbeat (and leader election) are Leases here.
				rule([]string{"coordination.k8s.io"}, []string{"leases"}, manageVerbs),
				// Events on the records.
				rule([]string{""}, []string{"events"}, []string{"create", "patch"}),
			},
		}),
		newObject("rbac.authorization.k8s.io/v1", "RoleBinding", ns, daemonName, map[string]any{
			"roleRef":  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": daemonName},
			"subjects": subject,
		}),
		newObject("apps/v1", "Deployment", ns, daemonName, map[string]any{
			"spec": map[string]any{
				"replicas": int64(1),
				// Standby replicas are never ready (webhooks reach the leader
				// only), so a rolling update would wait for them forever.
				"strategy": map[string]any{"type": "Recreate"},
				"selector": map[string]any{"matchLabels": selector},
				"template": map[string]any{
					"metadata": map[string]any{"labels": podLabels, "annotations": scrapeAnnotations()},
					"spec": map[string]any{
						"serviceAccountName": daemonSA,
						"securityContext": map[string]any{
							"runAsNonRoot": true, "runAsUser": int64(65532), "runAsGroup": int64(65532),
							"seccompProfile": map[string]any{"type": "RuntimeDefault"},
						},
						"containers": []any{map[string]any{
							"name":  "daemon",
							"image": image,
							"args":  toAny(args),
							"env": []any{
								map[string]any{"name": "HOME", "value": "/tmp"},
								map[string]any{"name": "XDG_CACHE_HOME", "value": "/var/cache/charter"},
							},
							"ports":          []any{map[string]any{"name": "http", "containerPort": int64(daemonPort), "protocol": "TCP"}},
							"readinessProbe": probe("/readyz"),
							"livenessProbe":  probe("/healthz"),
							"resources": map[string]any{
								"requests": map[string]any{"cpu": "50m", "memory": "128Mi"},
								"limits":   map[string]any{"memory": "1Gi"},
							},
							"securityContext": map[string]any{
								"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
								"capabilities": map[string]any{"drop": []any{"ALL"}},
							},
							"volumeMounts": []any{
								map[string]any{"name": "cache", "mountPath": "/var/cache/charter"},
								map[string]any{"name": "tmp", "mountPath": "/tmp"},
							},
						}},
						"volumes": []any{
							map[string]any{"name": "cache", "emptyDir": map[string]any{}},
							map[string]any{"name": "tmp", "emptyDir": map[string]any{}},
						},
					},
				},
			},
		}),
		withAnnotations(newObject("v1", "Service", ns, daemonName, map[string]any{
			"spec": map[string]any{
				"selector": selector,
				// One port: webhooks, health and /metrics.
				"ports": []any{map[string]any{"name": "http", "port": int64(daemonPort), "targetPort": "http", "protocol": "TCP"}},
			},
		}), scrapeAnnotations()),
	}
	cm, err := ic.configMap(ns)
	if err != nil {
		return nil, err
	}
	// Config and Secrets go before the Deployment that mounts them.
	var withConfig []*unstructured.Unstructured
	for _, u := range objs {
		if u.GetKind() == "Deployment" {
			withConfig = append(withConfig, cm)
			withConfig = append(withConfig, ic.secrets...)
			podSpec, _, _ := unstructured.NestedFieldNoCopy(u.Object, "spec", "template", "spec")
			ic.podConfig(podSpec.(map[string]any))
		}
		withConfig = append(withConfig, u)
	}
	objs = withConfig
	for _, u := range objs {
		if u.GetKind() != "Namespace" && u.GetKind() != "ClusterRole" && u.GetKind() != "ClusterRoleBinding" {
			u.SetNamespace(ns)
		}
		l := u.GetLabels()
		if l == nil {
			l = map[string]string{}
		}
		for k, v := range installLabels(ns) {
			l[k] = v.(string)
		}
		u.SetLabels(l)
	}
	return objs, nil
}

type daemonUninstallOptions struct {
	namespace string
	purge     bool
}

func newDaemonUninstallCmd(g *globalOptions) *cobra.Command {
	o := &daemonUninstallOptions{}
	cmd := &cobra.Command{
		Use:   "uninstall [--namespace charter-system] [--purge]",
		Short: "Remove what daemon install created",
		Long: `Uninstall deletes exactly the objects daemon install created, found by their label
app.kubernetes.io/managed-by=charter-install, kind by kind. It never touches releases or
their objects: uninstall releases first (charter uninstall NAME) if they should go too.
The Namespace is kept: it holds the release records and the credentials. --purge also
deletes the release records (Secrets owner=charter with a release label) — not the
releases' objects, and not the credentials.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return daemonUninstall(cmd.Context(), g, o)
		},
	}
	cmd.Flags().StringVar(&o.namespace, "namespace", "", "charter's namespace (default: --records-namespace, charter-system)")
	cmd.Flags().BoolVar(&o.purge, "purge", false, "also delete the release records (never the releases' objects)")
	return cmd
}

func daemonUninstall(ctx context.Context, g *globalOptions, o *daemonUninstallOptions) error {
	ns := g.installNamespace(o.namespace)
	c, err := g.clusterClient()
	if err != nil {
		return err
	}
	sel := labels.SelectorFromSet(labels.Set{labelManagedBy: installManagedBy, labelInstance: ns})
	deleted := 0
	for _, k := range installedKinds {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(k.gvk.GroupVersion().WithKind(k.gvk.Kind + "List"))
		opts := []client.ListOption{client.MatchingLabelsSelector{Selector: sel}}
		if k.namespaced {
			opts = append(opts, client.InNamespace(ns))
		}
		if err := c.Client.List(ctx, list, opts...); err != nil {
			return fmt.Errorf("list %s in %s: %w", k.gvk.Kind, ns, err)
		}
		for i := range list.Items {
			u := &list.Items[i]
			err := c.Client.Delete(ctx, u, client.PropagationPolicy(metav1.DeletePropagationBackground))
			if err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("delete %s: %w", subjectOf(u), err)
			}
			deleted++
			fmt.Fprintf(g.out, "deleted %s\n", subjectOf(u))
		}
	}
	if o.purge {
		recs := labels.SelectorFromSet(labels.Set{record.LabelOwner: record.OwnerValue}).String() + "," + record.LabelRelease
		l, err := c.Typed.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{LabelSelector: recs})
		if err != nil {
			return fmt.Errorf("list release records in %s: %w", ns, err)
		}
		for _, s := range l.Items {
			err := c.Typed.CoreV1().Secrets(ns).Delete(ctx, s.Name, metav1.DeleteOptions{})
			if err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("delete record Secret/%s/%s: %w", ns, s.Name, err)
			}
			deleted++
			fmt.Fprintf(g.out, "deleted Secret/%s/%s\n", ns, s.Name)
		}
	}
	if deleted == 0 {
		fmt.Fprintf(g.out, "Nothing to uninstall in %s\n", ns)
		return nil
	}
	g.progress("Kept Namespace/%s (records and credentials); releases and their objects were not touched.", ns)
	return nil
}

func subjectOf(u *unstructured.Unstructured) string {
	if u.GetNamespace() == "" {
		return u.GetKind() + "/" + u.GetName()
	}
	return u.GetKind() + "/" + u.GetNamespace() + "/" + u.GetName()
}

// daemonStatusReport is `charter daemon status -o json`.
type daemonStatusReport struct {
	OK            bool     `json:"ok"`
	Namespace     string   `json:"namespace"`
	Installed     bool     `json:"installed"`
	Image         string   `json:"image,omitempty"`
	Replicas      int32    `json:"replicas"`
	ReadyReplicas int32    `json:"readyReplicas"`
	Heartbeat     string   `json:"heartbeat,omitempty"` // RFC 3339
	HeartbeatAge  string   `json:"heartbeatAge,omitempty"`
	Holder        string   `json:"holder,omitempty"`
	Sources       []string `json:"sources,omitempty"`
	LastReconcile string   `json:"lastReconcile,omitempty"` // RFC 3339
	// Version is what the daemon reports in its heartbeat.
	Version string `json:"version,omitempty"`
	// SourceStatus is how each source fared at the daemon's last fetch.
	SourceStatus []reconcile.SourceStatus `json:"sourceStatus,omitempty"`
	Problems     []string                 `json:"problems,omitempty"`
}

func newDaemonStatusCmd(g *globalOptions) *cobra.Command {
	var ns, output string
	cmd := &cobra.Command{
		Use:   "status [--namespace charter-system]",
		Short: "Report whether the installed daemon is healthy (exit 1 when not)",
		Long: `Status prints OK with the ready replicas and the age of the daemon's last heartbeat, or
what is wrong: not installed, not ready (with the reason from the Deployment and its Pods,
e.g. CrashLoopBackOff or ImagePullBackOff), or no recent heartbeat (the daemon renews a Lease
every 10s; older than 30s means it is not reconciling). Exit code 1 when not OK.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			rep, err := daemonStatus(cmd.Context(), g, g.installNamespace(ns))
			if err != nil {
				return err
			}
			if err := g.show(output, rep, func(w io.Writer) {
				if rep.OK {
					fmt.Fprintln(w, "OK")
				} else {
					fmt.Fprintln(w, "NOT OK")
				}
				fmt.Fprintf(w, "Namespace:\t%s\n", rep.Namespace)
				if rep.Installed {
					fmt.Fprintf(w, "Image:\t%s\n", rep.Image)
					fmt.Fprintf(w, "Ready:\t%d/%d\n", rep.ReadyReplicas, rep.Replicas)
				}
				if rep.HeartbeatAge != "" {
					fmt.Fprintf(w, "Heartbeat:\t%s ago (%s)\n", rep.HeartbeatAge, rep.Holder)
				}
				if rep.Version != "" {
					fmt.Fprintf(w, "Version:\t%s\n", rep.Version)
				}
				for _, s := range rep.Sources {
					fmt.Fprintf(w, "Source:\t%s\n", s)
				}
				if rep.LastReconcile != "" {
					fmt.Fprintf(w, "Last reconcile:\t%s\n", rep.LastReconcile)
				}
				for _, p := range rep.Problems {
					fmt.Fprintf(w, "Problem:\t%s\n", p)
				}
			}); err != nil {
				return err
			}
			if !rep.OK {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&ns, "namespace", "", "charter's namespace (default: --records-namespace, charter-system)")
	addOutputFlag(cmd, &output)
	return cmd
}

// daemonStatus inspects the Deployment, its Pods and the heartbeat Lease.
func daemonStatus(ctx context.Context, g *globalOptions, ns string) (*daemonStatusReport, error) {
	c, err := g.clusterClient()
	if err != nil {
		return nil, err
	}
	rep := &daemonStatusReport{Namespace: ns}
	d, err := c.Typed.AppsV1().Deployments(ns).Get(ctx, daemonName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		rep.Problems = append(rep.Problems, fmt.Sprintf("not installed: no Deployment %s/%s (charter daemon install)", ns, daemonName))
	case err != nil:
		return nil, fmt.Errorf("get Deployment %s/%s: %w", ns, daemonName, reconcile.ServerError(c.Config.Host, err))
	default:
		rep.Installed = true
		if len(d.Spec.Template.Spec.Containers) > 0 {
			rep.Image = d.Spec.Template.Spec.Containers[0].Image
		}
		rep.Replicas = 1
		if d.Spec.Replicas != nil {
			rep.Replicas = *d.Spec.Replicas
		}
		rep.ReadyReplicas = d.Status.ReadyReplicas
		// With several replicas only the leader is ready: the others stand by.
		if rep.ReadyReplicas < 1 || (rep.Replicas == 1 && !deploymentAvailable(d)) {
			rep.Problems = append(rep.Problems, "not ready: "+notReadyReason(ctx, c, d))
		}
	}
	l, err := stalestHeartbeat(ctx, c.Typed, ns) // of every shard's
	switch {
	case apierrors.IsNotFound(err) || (err == nil && l.Spec.RenewTime == nil):
		rep.Problems = append(rep.Problems, "no recent heartbeat: the daemon never renewed its Lease "+ns+"/"+daemonLeaseName)
	case err != nil:
		return nil, fmt.Errorf("get Lease %s/%s: %w", ns, daemonLeaseName, reconcile.ServerError(c.Config.Host, err))
	default:
		age := time.Since(l.Spec.RenewTime.Time).Round(time.Second)
		rep.Heartbeat = l.Spec.RenewTime.UTC().Format(time.RFC3339)
		rep.HeartbeatAge = age.String()
		if l.Spec.HolderIdentity != nil {
			rep.Holder = *l.Spec.HolderIdentity
		}
		_ = json.Unmarshal([]byte(l.Annotations[daemonSourcesAnnot]), &rep.Sources)
		var hs reconcile.HeartbeatStatus
		if json.Unmarshal([]byte(l.Annotations[reconcile.AnnotationStatus]), &hs) == nil {
			if !hs.LastReconcile.IsZero() {
				rep.LastReconcile = hs.LastReconcile.UTC().Format(time.RFC3339)
			}
			rep.Version = hs.Version
			rep.SourceStatus = hs.Sources
			for _, src := range hs.Sources {
				if src.Error != "" {
					rep.Problems = append(rep.Problems, "source "+src.Source+" failing: "+oneLine(src.Error))
				}
			}
		}
		if age > 3*reconcile.HeartbeatEvery {
			rep.Problems = append(rep.Problems, fmt.Sprintf("no recent heartbeat: last one %s ago (stale after %s)", age, 3*reconcile.HeartbeatEvery))
		}
	}
	rep.OK = len(rep.Problems) == 0
	return rep, nil
}

func deploymentAvailable(d *appsv1.Deployment) bool {
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentAvailable {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// notReadyReason names why the daemon's Deployment is not ready: a waiting
// or crashing container, an unready Pod, or the Deployment's conditions.
func notReadyReason(ctx context.Context, c *reconcile.Cluster, d *appsv1.Deployment) string {
	var reasons []string
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err == nil {
		pods, err := c.Typed.CoreV1().Pods(d.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
		if err == nil {
			for _, p := range pods.Items {
				for _, cs := range p.Status.ContainerStatuses {
					switch {
					case cs.State.Waiting != nil && cs.State.Waiting.Reason != "":
						r := fmt.Sprintf("pod %s: %s", p.Name, cs.State.Waiting.Reason)
						if cs.RestartCount > 0 {
							r += fmt.Sprintf(" (%d restarts)", cs.RestartCount)
						}
						if cs.State.Waiting.Message != "" {
							r += ": " + cs.State.Waiting.Message
						}
						reasons = append(reasons, r)
					case cs.State.Terminated != nil:
						reasons = append(reasons, fmt.Sprintf("pod %s: terminated: %s", p.Name, cs.State.Terminated.Reason))
					}
				}
				if len(reasons) > 0 {
					continue
				}
				for _, pc := range p.Status.Conditions {
					if (pc.Type == corev1.PodScheduled || pc.Type == corev1.PodReady) && pc.Status != corev1.ConditionTrue && (pc.Reason != "" || pc.Message != "") {
						reasons = append(reasons, strings.TrimSpace(fmt.Sprintf("pod %s: %s %s", p.Name, pc.Reason, pc.Message)))
						break
					}
				}
			}
			if len(pods.Items) == 0 {
				reasons = append(reasons, "no pods")
			}
		}
	}
	for _, dc := range d.Status.Conditions {
		if dc.Status != corev1.ConditionTrue && dc.Message != "" {
			reasons = append(reasons, fmt.Sprintf("%s: %s", dc.Type, dc.Message))
		}
	}
	if len(reasons) == 0 {
		return fmt.Sprintf("%d/%d replicas ready", d.Status.ReadyReplicas, ptrOr(d.Spec.Replicas, 1))
	}
	return strings.Join(reasons, "; ")
}

func ptrOr(p *int32, def int32) int32 {
	if p == nil {
		return def
	}
	return *p
}

// daemonTarget is what `charter daemon target` reports.
type daemonTarget struct {
	Endpoint         string `json:"endpoint"`
	Context          string `json:"context"`
	Namespace        string `json:"namespace"`
	CharterNamespace string `json:"charterNamespace"`
}

// kubeTarget reads the API endpoint, context and namespace the kubeconfig
// selects, the way restConfig loads it.
func (g *globalOptions) kubeTarget() (*daemonTarget, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if g.kubeconfig != "" {
		rules.ExplicitPath = g.kubeconfig
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: g.kubeContext})
	raw, err := cc.RawConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	ns, _, err := cc.Namespace()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	name := g.kubeContext
	if name == "" {
		name = raw.CurrentContext
	}
	return &daemonTarget{Endpoint: cfg.Host, Context: name, Namespace: ns, CharterNamespace: g.installNamespace("")}, nil
}

func newDaemonTargetCmd(g *globalOptions) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "target",
		Short: "Show the cluster the daemon commands act on: API endpoint, context, namespace",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := g.kubeTarget()
			if err != nil {
				return err
			}
			return g.show(output, t, func(w io.Writer) {
				fmt.Fprintf(w, "API Endpoint: %s\n", t.Endpoint)
				fmt.Fprintf(w, "Context: %s\n", t.Context)
				fmt.Fprintf(w, "Namespace: %s\n", t.Namespace)
				fmt.Fprintf(w, "Charter namespace: %s\n", t.CharterNamespace)
			})
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}
