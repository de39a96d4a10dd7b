"""etcd's RBAC as ovsnet sets it up (root credentials): one user per host, authenticated by
its certificate's CN, with a role of exactly the permissions it needs; turning auth on.

Place: docs/architecture.md, "Layers": facade layer.
"""

from __future__ import annotations

import secrets

from ovsnet.etcd.connection import Connection


class Administering(Connection):
    """etcd's users, roles and auth switch; needs root credentials."""

    def ensure_host_role(self, host: str, role: str, permissions) -> list[str]:
        """Create the etcd user `host` (authenticated by its certificate's CN) and a role with
        exactly these permissions. Returns what it did; does nothing when all is in place."""
        from pyetcd import etcdrpc
        from pyetcd.etcdrpc import auth_pb2

        steps = []
        kinds = {
            "read": auth_pb2.Permission.READ,
            "write": auth_pb2.Permission.WRITE,
            "readwrite": auth_pb2.Permission.READWRITE,
        }
        with self._errors(f"setting up the etcd user {host}"):
            auth = self.client.authstub
            if role not in self._role_names():
                self._auth_call(auth.RoleAdd, etcdrpc.AuthRoleAddRequest(name=role))
                steps.append(f"add role {role}")
            have = self._role_permissions(role)
            for perm in permissions:
                wanted = (kinds[perm.kind], perm.key.encode(), (perm.range_end or "").encode())
                if wanted not in have:
                    grant = etcdrpc.AuthRoleGrantPermissionRequest(
                        name=role,
                        perm=auth_pb2.Permission(
                            permType=wanted[0], key=wanted[1], range_end=wanted[2]
                        ),
                    )
                    self._auth_call(auth.RoleGrantPermission, grant)
                    steps.append(
                        f"grant {perm.kind} {perm.key}"
                        + (f" .. {perm.range_end}" if perm.range_end else "")
                    )
            if host not in self._user_names():
                # The certificate's CN is the identity; a random password nobody keeps means
                # the user cannot log in by password (an empty one could).
                self._auth_call(
                    auth.UserAdd,
                    etcdrpc.AuthUserAddRequest(name=host, password=secrets.token_urlsafe(32)),
                )
                steps.append(f"add user {host}")
            if role not in self._user_roles(host):
                self._auth_call(
                    auth.UserGrantRole, etcdrpc.AuthUserGrantRoleRequest(user=host, role=role)
                )
                steps.append(f"grant role {role} to {host}")
        return steps

    def enable_auth(self, root: str = "root") -> list[str]:
        """Create the root user (certificate CN `root`) and turn etcd's auth on."""
        from pyetcd import etcdrpc

        steps = []
        with self._errors("enabling etcd auth"):
            auth = self.client.authstub
            try:
                users = self._user_names()
            except Exception as exc:  # auth already on and we are not root: report that
                raise self.translate(exc, "listing users") from None
            if root not in users:
                self._auth_call(
                    auth.UserAdd,
                    etcdrpc.AuthUserAddRequest(name=root, password=secrets.token_urlsafe(32)),
                )
                steps.append(f"add user {root}")
            if "root" not in self._role_names():
                self._auth_call(auth.RoleAdd, etcdrpc.AuthRoleAddRequest(name="root"))
            if "root" not in self._user_roles(root):
                self._auth_call(
                    auth.UserGrantRole, etcdrpc.AuthUserGrantRoleRequest(user=root, role="root")
                )
                steps.append(f"grant role root to {root}")
            self._auth_call(auth.AuthEnable, etcdrpc.AuthEnableRequest())
            steps.append("enable auth")
        return steps

    def _auth_call(self, method, request):
        client = self.client
        return method(
            request, client.timeout, credentials=client.call_credentials, metadata=client.metadata
        )

    def _role_names(self) -> set[str]:
        from pyetcd import etcdrpc

        return set(
            self._auth_call(self.client.authstub.RoleList, etcdrpc.AuthRoleListRequest()).roles
        )

    def _user_names(self) -> set[str]:
        from pyetcd import etcdrpc

        return set(
            self._auth_call(self.client.authstub.UserList, etcdrpc.AuthUserListRequest()).users
        )

    def _user_roles(self, user: str) -> set[str]:
        from pyetcd import etcdrpc

        if user not in self._user_names():
            return set()
        return set(
            self._auth_call(
                self.client.authstub.UserGet, etcdrpc.AuthUserGetRequest(name=user)
            ).roles
        )

    def _role_permissions(self, role: str) -> set[tuple[int, bytes, bytes]]:
        from pyetcd import etcdrpc

        response = self._auth_call(
            self.client.authstub.RoleGet, etcdrpc.AuthRoleGetRequest(role=role)
        )
        return {(p.permType, p.key, p.range_end) for p in response.perm}
