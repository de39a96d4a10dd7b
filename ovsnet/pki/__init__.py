"""ovsnet's private PKI: one CA per purpose, so a certificate works only where it was meant to.

Purposes (`PURPOSES`): `ike` (IPsec host identities, strongSwan), `docker-server` and
`docker-client` (the Docker API with --tlsverify), `etcd-server` and `etcd-client` (cluster mode).
Each purpose has its own self-signed CA and each consumer trusts exactly one of them: strongSwan
the IKE CA, dockerd the docker-client CA, a Docker client the docker-server CA, etcd the
etcd-client CA, an etcd client the etcd-server CA. What a certificate says is pure: `profile`
(purposes, key usages, lifetimes), `builders`, `reading` and `checks`; the other modules keep
certificates, keys and CRLs on disk:
`store` (the directory, reading and writing), `cas`, `crl`, `issue` (leaf certificates),
`lifecycle` (migrate, rotate a CA, renew), `contents` (list, export). Private keys are written
0600 from their first byte, atomically, and never printed or returned as text; every OS error
of the key store becomes an ovsnet error with a one-line message. The trust model, rotation
and revocation: docs/security.md ("Trust model").

Layout of a PKI directory (default /var/lib/ovsnet/pki, env OVSNET_PKI_DIR): outside /etc/ovsnet,
which the companion container mounts. The CA keys stay here, on the machine that issues
certificates; `pki export` copies what one host needs (never a CA key):

    ca/PURPOSE/{ca-cert.pem,ca-key.pem,crl.pem}   one CA per purpose and its CRL
    hosts/HOST-cert.pem  hosts/HOST-key.pem        IKE (`ovsnet ipsec cert --ca ca/ike/ca-cert.pem`)
    docker/HOST/server/{ca.pem,cert.pem,key.pem}   dockerd --tlscacert/--tlscert/--tlskey
    docker/HOST/client/{ca.pem,cert.pem,key.pem}   DOCKER_CERT_PATH / --docker-tls DIR
    etcd/server/NAME/{ca.pem,cert.pem,key.pem}     etcd --trusted-ca-file/--cert-file/--key-file
    etcd/client/NAME/{ca.pem,cert.pem,key.pem}     ovsnet --etcd-ca/--etcd-cert/--etcd-key
In each folder ca.pem is the CA its holder must trust: the other side's purpose CA.

Place: docs/architecture.md, "Layers": facade layer (the key store on disk); the X.509
profile is pure, in `profile`, `builders`, `reading` and `checks`.
"""

# For the cluster dataplane, which reads a certificate through these two names.
from ovsnet.pki.reading import load_certificate, summarize

__all__ = ["load_certificate", "summarize"]
