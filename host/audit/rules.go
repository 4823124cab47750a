package audit

// The rules Lint applies. IDs are stable: a rule may be reworded or
// retired, never given another meaning. BH0xx are about the module, BH1xx
// HTTP, BH2xx the filesystem, BH3xx the environment, BH4xx pinning and
// signatures, BH5xx limits.
var (
	RuleModuleUnreadable = Rule{"BH001", "module-unreadable", Medium,
		"the module cannot be read or decoded, so the grants could not be checked against its imports"}

	RuleHTTPWildcardPublicSuffix = Rule{"BH100", "http-wildcard-public-suffix", High,
		"a wildcard host over a public suffix (*.com, *.co.uk, *.github.io): every name under it, of unrelated owners"}
	RuleHTTPWildcard = Rule{"BH101", "http-wildcard", Low,
		"a wildcard host: every name below a domain, including ones created later"}
	RuleHTTPRangesPublic = Rule{"BH102", "http-ranges-public", High,
		"allow_ranges holding public addresses (0.0.0.0/0, ::/0): every special-purpose range they overlap"}
	RuleHTTPRangesMetadata = Rule{"BH103", "http-ranges-link-local", High,
		"allow_ranges reaching link-local addresses, where cloud metadata services answer with credentials"}
	RuleHTTPRangesPrivate = Rule{"BH104", "http-ranges-private", Medium,
		"allow_ranges reaching private networks (10/8, 172.16/12, 192.168/16, fc00::/7, CGNAT)"}
	RuleHTTPRangesLoopback = Rule{"BH105", "http-ranges-loopback", Low,
		"allow_ranges reaching loopback: services on the host itself"}
	RuleHTTPRangesOther = Rule{"BH106", "http-ranges-special", Medium,
		"allow_ranges reaching other special-purpose addresses (this network, multicast, reserved, ...)"}
	RuleHTTPPlaintext = Rule{"BH107", "http-plaintext", Low,
		"plain http to a host that is not loopback: requests and credentials cross the network unencrypted"}
	RuleHTTPUnused = Rule{"BH108", "http-unused", Medium,
		"HTTP grants for a module that does not import the HTTP host functions"}
	RuleHTTPWritesEverywhere = Rule{"BH109", "http-writes-every-path", Low,
		"a grant of methods that change things (POST, PUT, PATCH, DELETE) on every path of a host"}

	RuleFSRoot = Rule{"BH200", "fs-root", High,
		"a directory grant of / : the whole host file system"}
	RuleFSHome = Rule{"BH201", "fs-home", High,
		"a directory grant of a home folder, a folder holding home folders, or a dot-folder in one (~/.ssh, ~/.aws)"}
	RuleFSSystem = Rule{"BH202", "fs-system", High,
		"a directory grant of a system folder (/etc, /usr, /var, /proc, ...) or inside /etc, /proc, /sys, /dev, /boot"}
	RuleFSUnused = Rule{"BH203", "fs-unused", Medium,
		"directory grants for a module that imports neither the fs host functions nor WASI path_open"}

	RuleEnvUnused = Rule{"BH300", "env-unused", Low,
		"environment variables granted to a module that does not import WASI environ_get"}

	RuleNoPin = Rule{"BH400", "no-digest-pin", Medium,
		"no sha256 pin: any module copied over the file runs under these grants"}
	RulePinMismatch = Rule{"BH401", "pin-mismatch", High,
		"the sha256 pin differs from the module's digest: the module is not the reviewed one"}
	RuleNoSignature = Rule{"BH402", "no-signature", Medium,
		"no signature beside the manifest (blockhost sign)"}
	RuleBadSignature = Rule{"BH403", "bad-signature", High,
		"the signature does not verify: altered, stale (manifest or module changed), or by an untrusted key"}

	RuleLargeLimits = Rule{"BH500", "large-limits", Low,
		"a limit far above what a block needs (memory, timeout, output, request and response bodies, concurrency, redirects)"}
)

// Rules lists every rule, by ID.
func Rules() []Rule {
	return []Rule{
		RuleModuleUnreadable,
		RuleHTTPWildcardPublicSuffix, RuleHTTPWildcard, RuleHTTPRangesPublic, RuleHTTPRangesMetadata,
		RuleHTTPRangesPrivate, RuleHTTPRangesLoopback, RuleHTTPRangesOther, RuleHTTPPlaintext, RuleHTTPUnused, RuleHTTPWritesEverywhere,
		RuleFSRoot, RuleFSHome, RuleFSSystem, RuleFSUnused,
		RuleEnvUnused,
		RuleNoPin, RulePinMismatch, RuleNoSignature, RuleBadSignature,
		RuleLargeLimits,
	}
}
