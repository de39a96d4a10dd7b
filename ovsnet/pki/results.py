"""What the `ovsnet pki ...` commands return: results the CLI prints as text or one JSON document.

Paths and metadata only, never key bytes.

Place: docs/architecture.md, "Packages and what they own": `ovsnet/pki/` (its commands' results).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ovsnet.pki.crl import SignedCrl
from ovsnet.pki.profile import utcnow


@dataclass
class IssuedResult:
    """Certificates written or kept by one command. Paths and metadata only, never key bytes."""

    action: str
    issued: list = field(default_factory=list)
    dry_run: bool = False

    def as_json(self) -> Any:
        now = utcnow()
        return {
            "action": self.action,
            "dry_run": self.dry_run,
            "changed": any(i.changed for i in self.issued),
            "certificates": [i.as_json(now) for i in self.issued],
        }

    def render(self, console) -> None:
        for item in self.issued:
            verb = "would write" if self.dry_run else "wrote"
            if item.kind in ("legacy-ca", "retired-ca"):
                verb = "would retire" if self.dry_run else "retired"
            verb = verb if item.changed else "unchanged"
            key = f"  key {item.key_path} (0600)" if item.kind not in ("legacy-ca",) else ""
            console.print(
                f"{verb}: {item.kind} {item.name}  {item.summary.subject}  cert {item.cert_path}"
                f"{key}  expires {item.summary.not_after:%Y-%m-%d}",
                markup=False,
            )


@dataclass
class CertificateListResult:
    """Every CA and certificate of a PKI directory (`pki list`)."""

    directory: str
    issued: list

    def as_json(self) -> Any:
        now = utcnow()
        return {"directory": self.directory, "certificates": [i.as_json(now) for i in self.issued]}

    def render(self, console) -> None:
        now = utcnow()
        if not self.issued:
            console.print(f"no certificates in {self.directory}")
            return
        for item in self.issued:
            s = item.summary
            if item.revoked:
                flag = "  [red]REVOKED[/red]"
            elif s.expired(now):
                flag = "  [red]EXPIRED[/red]"
            elif s.expires_soon(now):
                flag = f"  [yellow]warning: expires in {s.days_left(now)} days[/yellow]"
            else:
                flag = ""
            if item.kind == "legacy-ca":
                flag += "  [red]all-purpose CA of an older ovsnet: `ovsnet pki migrate`[/red]"
            console.print(f"{item.kind:<14} {item.name:<16} {s.subject}", markup=False, emoji=False)
            console.print(f"{'':<14} expires {s.not_after:%Y-%m-%d}{flag}")
            # emoji=False: rich would turn the ":CD:" of a fingerprint into an emoji
            console.print(f"{'':<14} sha256 {s.fingerprint_sha256}", markup=False, emoji=False)


@dataclass
class CrlResult:
    """A CRL signed anew by `pki revoke` or `pki crl`."""

    action: str
    result: SignedCrl
    dry_run: bool = False

    def as_json(self) -> Any:
        return {"action": self.action, "dry_run": self.dry_run, **self.result.as_json()}

    def render(self, console) -> None:
        r = self.result
        if not r.changed:
            console.print(f"unchanged: {r.purpose} CRL {r.path} already revokes it", markup=False)
            return
        verb = "would write" if self.dry_run else "wrote"
        what = f"revoked serial {r.added}; " if r.added else ""
        console.print(
            f"{verb}: {what}{r.purpose} CRL {r.path} (number {r.number}, {r.revoked} revoked, "
            f"next update {r.next_update:%Y-%m-%d})",
            markup=False,
        )
        if r.purpose == "ike":
            console.print(f"then on every host: ovsnet ipsec crl {r.path}", markup=False)
        elif r.purpose.startswith("docker-"):
            console.print(
                "dockerd reads no CRL: it accepts a revoked Docker certificate until it expires "
                "or its CA is rotated (`ovsnet pki rotate-ca`)",
                markup=False,
            )


@dataclass
class ExportResult:
    """The files `pki export` wrote or would write."""

    files: list
    dry_run: bool = False

    def as_json(self) -> Any:
        return {
            "dry_run": self.dry_run,
            "changed": any(changed for _, changed in self.files),
            "files": [{"path": str(p), "changed": c} for p, c in self.files],
        }

    def render(self, console) -> None:
        verb = "would write" if self.dry_run else "wrote"
        for path, changed in self.files:
            console.print(f"{verb if changed else 'unchanged'}: {path}", markup=False)
