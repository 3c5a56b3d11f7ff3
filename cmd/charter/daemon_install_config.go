package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/charter-sh/charter/credential"
	"github.com/charter-sh/charter/source"
)

// What install puts beside the Deployment for the daemon's configuration
// and secrets.
const (
	daemonConfigName  = "charter-daemon-config" // ConfigMap: the daemon config file
	daemonConfigDir   = "/etc/charter/config"
	daemonConfigFile  = daemonConfigDir + "/daemon.yaml"
	daemonSSHName     = "charter-daemon-ssh" // Secret: identity, known_hosts
	daemonSSHDir      = "/etc/charter/ssh"
	daemonWebhookName = "charter-daemon-webhook" // Secret: the webhook HMAC secret
	daemonWebhookDir  = "/etc/charter/webhook"
	redactedValue     = "REDACTED"
)

// installConfig is everything the daemon reads besides its flags: the
// sources (a config file in a ConfigMap), the credentials they name (copied
// into the install namespace when the CLI's credential store is elsewhere),
// an SSH key and known_hosts for git over ssh, and a webhook secret.
type installConfig struct {
	config     daemonConfig
	secrets    []*unstructured.Unstructured // credential, ssh and webhook Secrets install owns
	ssh        bool
	knownHosts bool
	webhook    bool
}

// parseCredentialFlags reads --credential SOURCE=NAME pairs.
func parseCredentialFlags(pairs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, p := range pairs {
		src, name, ok := strings.Cut(p, "=")
		if !ok || src == "" || name == "" {
			return nil, fmt.Errorf("--credential %q: want SOURCE=CREDENTIAL (a source's name or URL, and a credential from charter credential list)", source.RedactText(p))
		}
		if err := credential.ValidateName(name); err != nil {
			return nil, fmt.Errorf("--credential %s: %w", src, err)
		}
		out[src] = name
	}
	return out, nil
}

// buildInstallConfig assembles the daemon config and the Secrets install
// creates. Credentials are read from the CLI's credential store; with
// dryRun their values are never read and the Secrets show REDACTED.
func (g *globalOptions) buildInstallConfig(ctx context.Context, o *daemonInstallOptions, ns string, sources []string) (*installConfig, error) {
	creds, err := parseCredentialFlags(o.credentials)
	if err != nil {
		return nil, err
	}
	ic := &installConfig{config: daemonConfig{APIVersion: "charter.sh/v1", Kind: "DaemonConfig"}}
	used := map[string]bool{}
	names := map[string]bool{}
	for _, s := range sources {
		name, loc := "", s
		if n, l, ok := strings.Cut(s, "="); ok && !strings.Contains(n, "/") && !strings.Contains(n, ":") {
			name, loc = n, l
		}
		if name == "" {
			name = sourceName(loc)
		}
		for names[name] {
			name += "-2"
		}
		names[name] = true
		cs := configSource{Name: name, URL: loc, AllowEmpty: o.allowEmpty}
		if o.interval > 0 {
			cs.Interval = o.interval.String()
		}
		for _, key := range []string{name, loc, s} {
			if c, ok := creds[key]; ok {
				cs.Credential = c
				used[key] = true
			}
		}
		if cs.Credential == "" && g.stateCredential != "" && loc == g.statePath {
			cs.Credential = g.stateCredential
		}
		if o.webhookSecretFile != "" {
			cs.WebhookSecretFile = daemonWebhookDir + "/secret"
		}
		ic.config.Sources = append(ic.config.Sources, cs)
	}
	var unknown []string
	for k := range creds {
		if !used[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("--credential names no source: %s (sources: %s)", strings.Join(unknown, ", "), strings.Join(sortedKeys(names), ", "))
	}

	// Credentials: the daemon reads its namespace's credential store.
	// Copy each named credential there unless it is already that store.
	fromNS := g.recordsNS
	copyCreds := fromNS != ns
	seen := map[string]bool{}
	for _, cs := range ic.config.Sources {
		if cs.Credential == "" || seen[cs.Credential] {
			continue
		}
		seen[cs.Credential] = true
		if o.dryRun {
			if copyCreds {
				ic.secrets = append(ic.secrets, credentialObject(ns, credential.New(cs.Credential, redactedValue, redactedValue)))
			}
			continue
		}
		st, err := g.credentials()
		if err != nil {
			return nil, err
		}
		c, err := st.Get(ctx, cs.Credential)
		if err != nil {
			if errors.Is(err, credential.ErrNotFound) {
				return nil, fmt.Errorf("credential %q for source %s not found in %s: add it with charter credential add", cs.Credential, cs.Name, st.Namespace())
			}
			return nil, err
		}
		if copyCreds {
			ic.secrets = append(ic.secrets, credentialObject(ns, c))
		}
	}

	secretFrom := func(name string, files map[string]string) (*unstructured.Unstructured, error) {
		data := map[string]any{}
		for key, file := range files {
			if file == "" {
				continue
			}
			b, err := os.ReadFile(file)
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", file, err)
			}
			if len(strings.TrimSpace(string(b))) == 0 {
				return nil, fmt.Errorf("%s is empty", file)
			}
			if o.dryRun {
				data[key] = redactedValue
			} else {
				data[key] = base64.StdEncoding.EncodeToString(b)
			}
		}
		field := "data"
		if o.dryRun {
			field = "stringData" // REDACTED is not base64
		}
		return newObject("v1", "Secret", ns, name, map[string]any{"type": "Opaque", field: data}), nil
	}
	if o.sshKeyFile != "" || o.knownHostsFile != "" {
		if o.sshKeyFile == "" {
			return nil, fmt.Errorf("--known-hosts needs --ssh-key")
		}
		u, err := secretFrom(daemonSSHName, map[string]string{"identity": o.sshKeyFile, "known_hosts": o.knownHostsFile})
		if err != nil {
			return nil, fmt.Errorf("ssh secret: %w", err)
		}
		ic.secrets = append(ic.secrets, u)
		ic.ssh, ic.knownHosts = true, o.knownHostsFile != ""
	}
	if o.webhookSecretFile != "" {
		u, err := secretFrom(daemonWebhookName, map[string]string{"secret": o.webhookSecretFile})
		if err != nil {
			return nil, fmt.Errorf("webhook secret: %w", err)
		}
		ic.secrets = append(ic.secrets, u)
		ic.webhook = true
	}
	return ic, nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// credentialObject is the credential's Secret in ns, as the credential
// store writes it, as an object install applies and owns.
func credentialObject(ns string, c *credential.Credential) *unstructured.Unstructured {
	sec := credential.SecretObject(ns, c)
	m, _ := runtime.DefaultUnstructuredConverter.ToUnstructured(sec)
	u := &unstructured.Unstructured{Object: m}
	u.SetAPIVersion("v1")
	u.SetKind("Secret")
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	return u
}

// configMap is the daemon config file as a ConfigMap.
func (ic *installConfig) configMap(ns string) (*unstructured.Unstructured, error) {
	b, err := yaml.Marshal(ic.config)
	if err != nil {
		return nil, fmt.Errorf("encode daemon config: %w", err)
	}
	return newObject("v1", "ConfigMap", ns, daemonConfigName, map[string]any{
		"data": map[string]any{"daemon.yaml": string(b)},
	}), nil
}

// podConfig adds the config and secret volumes, mounts and environment to
// the daemon's pod spec.
func (ic *installConfig) podConfig(podSpec map[string]any) {
	ctrs, _ := podSpec["containers"].([]any)
	ctr := ctrs[0].(map[string]any)
	vols := podSpec["volumes"].([]any)
	mounts := ctr["volumeMounts"].([]any)
	env := ctr["env"].([]any)

	vols = append(vols, map[string]any{"name": "config", "configMap": map[string]any{"name": daemonConfigName}})
	mounts = append(mounts, map[string]any{"name": "config", "mountPath": daemonConfigDir, "readOnly": true})
	if ic.ssh {
		vols = append(vols, map[string]any{"name": "ssh", "secret": map[string]any{"secretName": daemonSSHName, "defaultMode": int64(0o400)}})
		mounts = append(mounts, map[string]any{"name": "ssh", "mountPath": daemonSSHDir, "readOnly": true})
		env = append(env, map[string]any{"name": "CHARTER_SSH_KEY", "value": daemonSSHDir + "/identity"})
		if ic.knownHosts {
			env = append(env, map[string]any{"name": "CHARTER_SSH_KNOWN_HOSTS", "value": daemonSSHDir + "/known_hosts"})
		}
	}
	if ic.webhook {
		vols = append(vols, map[string]any{"name": "webhook", "secret": map[string]any{"secretName": daemonWebhookName, "defaultMode": int64(0o400)}})
		mounts = append(mounts, map[string]any{"name": "webhook", "mountPath": daemonWebhookDir, "readOnly": true})
	}
	podSpec["volumes"] = vols
	ctr["volumeMounts"] = mounts
	ctr["env"] = env
}
