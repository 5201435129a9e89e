#!/usr/bin/env bash
# Installs and starts, on loopback, the services and tools Stowage's tests need; `make services` runs it.
#
#   etcd 3.4      127.0.0.1:2379   Debian etcd-server + etcd-client (etcdctl); started here in the background
#   MariaDB       127.0.0.1:3306   root, no password; normally already running
#   Redis         127.0.0.1:6379   normally already running
#   protoc                         protobuf-compiler, needed to build the etcd-client crate
#   protobuf well-known types      libprotobuf-dev (google/protobuf/*.proto, imported by etcd-client)
#   promtool, prometheus           Debian prometheus: the tool, and the server binary that
#                                  tests/chart.rs starts itself on loopback (never as a service)
#   kubernetes-validate            PyPI (pip), Kubernetes schemas for tests/chart.rs; with python3
#                                  and pip from Debian when they are missing
#   kubectl                        Debian kubernetes-client, only when no kubectl is on PATH
#   kubectl 1.20                   Debian kubernetes-client unpacked (not installed) under
#                                  $STOWAGE_SERVICES_DIR/kubernetes-client, so the emulator's kubectl
#                                  tests also cover the oldest client we support
#
# Idempotent: what is installed is not installed again, what answers is not started again, and
# `apt-get update` runs only when something has to be installed. Every wait is bounded.
#
# Environment:
#   STOWAGE_SERVICES_DIR      etcd data and logs (default: ${TMPDIR:-/tmp}/stowage-services)
#   STOWAGE_SERVICES_TIMEOUT  seconds to wait for each service to answer (default: 60)
set -euo pipefail

readonly SERVICES_DIR="${STOWAGE_SERVICES_DIR:-${TMPDIR:-/tmp}/stowage-services}"
readonly TIMEOUT="${STOWAGE_SERVICES_TIMEOUT:-60}"

readonly ETCD_CLIENT_URL="http://127.0.0.1:2379"
readonly ETCD_PEER_URL="http://127.0.0.1:2380"
readonly MARIADB_PORT=3306
readonly REDIS_PORT=6379

export DEBIAN_FRONTEND=noninteractive

log() { printf '[services] %s\n' "$*" >&2; }
die() {
    printf '[services] error: %s\n' "$*" >&2
    exit 1
}

# Runs a command as root: directly when we are root, through non-interactive sudo otherwise.
as_root() {
    if [[ ${EUID} -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n -E "$@"
    else
        die "need root to run: $*"
    fi
}

# True when something accepts TCP connections on 127.0.0.1:<port>.
port_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# True while the process runs (a child that exited stays a zombie until we exit, so kill -0 is not enough).
process_alive() {
    local state
    state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n ${state} && ${state} != Z ]]
}

# wait_until <command...>: polls the command until it succeeds (0) or TIMEOUT seconds pass (1).
wait_until() {
    local deadline=$((SECONDS + TIMEOUT))
    until "$@"; do
        if ((SECONDS >= deadline)); then
            return 1
        fi
        sleep 0.5
    done
}

# ---------------------------------------------------------------------------------------------------
# Packages

# Packages to install, collected first so that apt runs at most once.
MISSING_PACKAGES=()

# need_command <command, or absolute path of a file> <package>: queues the package when it is absent.
need_command() {
    local command=$1 package=$2
    if [[ ${command} == /* ]]; then
        [[ -e ${command} ]] && return 0
    elif command -v "${command}" >/dev/null 2>&1; then
        return 0
    fi
    log "${command} not found: will install ${package}"
    MISSING_PACKAGES+=("${package}")
}

collect_missing_packages() {
    need_command etcd etcd-server
    need_command etcdctl etcd-client
    need_command protoc protobuf-compiler
    # The well-known types (google/protobuf/descriptor.proto, ...) etcd-client's protos import.
    need_command /usr/include/google/protobuf/descriptor.proto libprotobuf-dev
    need_command promtool prometheus
    need_command kubectl kubernetes-client
    need_command /usr/sbin/mariadbd mariadb-server
    need_command redis-server redis-server
    need_command redis-cli redis-tools
    need_command python3 python3
    if ! python3 -m pip --version >/dev/null 2>&1; then
        log "pip for python3 not found: will install python3-pip"
        MISSING_PACKAGES+=(python3-pip)
    fi
}

# Packages such as etcd-server and prometheus try to start their daemon from the maintainer scripts.
# There is no systemd here, and the prometheus server must not run at all, so while apt installs,
# a policy-rc.d (the Debian mechanism for this) forbids every service start. An existing one is kept.
POLICY_RC_D=/usr/sbin/policy-rc.d
POLICY_RC_D_OURS=0

forbid_service_starts() {
    if [[ ! -e ${POLICY_RC_D} ]]; then
        as_root sh -c "printf '#!/bin/sh\nexit 101\n' > ${POLICY_RC_D} && chmod 0755 ${POLICY_RC_D}"
        POLICY_RC_D_OURS=1
    fi
}

allow_service_starts() {
    if [[ ${POLICY_RC_D_OURS} -eq 1 ]]; then
        as_root rm -f "${POLICY_RC_D}"
        POLICY_RC_D_OURS=0
    fi
}

install_missing_packages() {
    ((${#MISSING_PACKAGES[@]} > 0)) || return 0
    command -v apt-get >/dev/null 2>&1 ||
        die "apt-get not found; install these packages by hand: ${MISSING_PACKAGES[*]}"
    local apt_opts=(-y -q -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
    log "apt-get update"
    as_root apt-get update -q -o DPkg::Lock::Timeout=300 >/dev/null ||
        die "apt-get update failed"
    forbid_service_starts
    trap allow_service_starts EXIT
    log "apt-get install ${MISSING_PACKAGES[*]}"
    as_root apt-get install "${apt_opts[@]}" --no-install-recommends "${MISSING_PACKAGES[@]}" ||
        die "apt-get install ${MISSING_PACKAGES[*]} failed"
    allow_service_starts
    trap - EXIT
}

# ---------------------------------------------------------------------------------------------------
# etcd

etcd_healthy() {
    etcdctl --endpoints="${ETCD_CLIENT_URL}" --dial-timeout=2s --command-timeout=2s endpoint health \
        >/dev/null 2>&1
}

start_etcd() {
    local data_dir="${SERVICES_DIR}/etcd" log_file="${SERVICES_DIR}/etcd.log" pid_file="${SERVICES_DIR}/etcd.pid"
    if etcd_healthy; then
        log "etcd already answers on ${ETCD_CLIENT_URL}"
        return 0
    fi
    if port_open 2379; then
        # Something holds the port: perhaps an etcd that is still starting. Give it the usual time.
        if wait_until etcd_healthy; then
            log "etcd answers on ${ETCD_CLIENT_URL}"
            return 0
        fi
        die "something listens on 127.0.0.1:2379 but is not a healthy etcd; stop it or free the port"
    fi

    mkdir -p "${SERVICES_DIR}"
    log "starting etcd (data ${data_dir}, log ${log_file})"
    # setsid: etcd outlives this script and make, and a Ctrl-C in the terminal does not reach it.
    setsid etcd \
        --name default \
        --data-dir "${data_dir}" \
        --listen-client-urls "${ETCD_CLIENT_URL}" \
        --advertise-client-urls "${ETCD_CLIENT_URL}" \
        --listen-peer-urls "${ETCD_PEER_URL}" \
        --initial-advertise-peer-urls "${ETCD_PEER_URL}" \
        --initial-cluster "default=${ETCD_PEER_URL}" \
        --logger zap \
        </dev/null >>"${log_file}" 2>&1 &
    local pid=$!
    disown "${pid}" 2>/dev/null || true
    echo "${pid}" >"${pid_file}"

    etcd_up_or_exited() { etcd_healthy || ! process_alive "${pid}"; }
    wait_until etcd_up_or_exited || true
    if etcd_healthy; then
        log "etcd answers on ${ETCD_CLIENT_URL}"
        return 0
    fi
    log "last lines of ${log_file}:"
    tail -n 20 "${log_file}" >&2 || true
    if process_alive "${pid}"; then
        die "etcd (pid ${pid}) did not answer on ${ETCD_CLIENT_URL} within ${TIMEOUT}s"
    fi
    die "etcd exited during start-up; see ${log_file}"
}

# ---------------------------------------------------------------------------------------------------
# MariaDB

mariadb_admin() {
    local admin
    admin=$(command -v mariadb-admin || command -v mysqladmin || true)
    [[ -n ${admin} ]] || return 1
    "${admin}" --protocol=tcp -h 127.0.0.1 -P "${MARIADB_PORT}" -u root --connect-timeout=2 "$@"
}

# "Answers" means the server speaks the protocol; `ping` succeeds even when the login is refused.
mariadb_answers() {
    if command -v mariadb-admin >/dev/null 2>&1 || command -v mysqladmin >/dev/null 2>&1; then
        mariadb_admin ping >/dev/null 2>&1
    else
        port_open "${MARIADB_PORT}"
    fi
}

mariadb_client() {
    command -v mariadb || command -v mysql
}

mariadb_root_login_works() {
    local client
    client=$(mariadb_client) || return 1
    "${client}" --protocol=tcp -h 127.0.0.1 -P "${MARIADB_PORT}" -u root --connect-timeout=2 \
        -e 'SELECT 1' >/dev/null 2>&1
}

# A freshly installed Debian MariaDB lets root in through the unix socket only. The tests log in as
# root without a password over TCP, as on the project's machines; allow that (loopback only) once.
ensure_mariadb_root_login() {
    mariadb_root_login_works && return 0
    [[ ${EUID} -eq 0 ]] || die "MariaDB refuses root without a password on 127.0.0.1:${MARIADB_PORT}"
    local client
    client=$(mariadb_client) || die "no mariadb client found; install mariadb-client"
    log "allowing root without a password over TCP on loopback"
    "${client}" -u root -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('');
        CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
        GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
        CREATE DATABASE IF NOT EXISTS test;
        FLUSH PRIVILEGES;" ||
        die "could not grant root access over TCP; check MariaDB's error log"
    mariadb_root_login_works || die "MariaDB still refuses root without a password on 127.0.0.1:${MARIADB_PORT}"
}

start_mariadb() {
    if mariadb_answers; then
        log "MariaDB already answers on 127.0.0.1:${MARIADB_PORT}"
    else
        log "starting MariaDB"
        if id mysql >/dev/null 2>&1; then
            as_root install -d -o mysql -g mysql -m 0755 /run/mysqld
        fi
        as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
        wait_until mariadb_answers ||
            die "MariaDB did not answer on 127.0.0.1:${MARIADB_PORT} within ${TIMEOUT}s; see /var/log/mysql/error.log"
        log "MariaDB answers on 127.0.0.1:${MARIADB_PORT}"
    fi
    ensure_mariadb_root_login
}

# ---------------------------------------------------------------------------------------------------
# Redis

redis_answers() {
    [[ $(redis-cli -h 127.0.0.1 -p "${REDIS_PORT}" ping 2>/dev/null) == PONG ]]
}

start_redis() {
    if redis_answers; then
        log "Redis already answers on 127.0.0.1:${REDIS_PORT}"
        return 0
    fi
    log "starting Redis"
    as_root install -d /var/lib/redis /var/log/redis
    as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "${REDIS_PORT}" --save "" \
        --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
    wait_until redis_answers ||
        die "Redis did not answer on 127.0.0.1:${REDIS_PORT} within ${TIMEOUT}s; see /var/log/redis/ci.log"
    log "Redis answers on 127.0.0.1:${REDIS_PORT}"
}

# ---------------------------------------------------------------------------------------------------

# The emulator must satisfy kubectl from 1.20 on. Debian's kubernetes-client is 1.20; unpacking it
# beside whatever kubectl is on PATH lets the conformance tests drive both without a conflict.
unpack_old_kubectl() {
    local dest="${SERVICES_DIR}/kubernetes-client"
    [[ -x ${dest}/usr/bin/kubectl ]] && return 0
    local tmp
    tmp="$(mktemp -d)"
    log "unpacking Debian kubernetes-client into ${dest}"
    (cd "${tmp}" && apt-get download -q kubernetes-client >/dev/null 2>&1) || {
        as_root apt-get update -q -o DPkg::Lock::Timeout=300 >/dev/null || die "apt-get update failed"
        (cd "${tmp}" && apt-get download -q kubernetes-client >/dev/null) ||
            die "apt-get download kubernetes-client failed"
    }
    mkdir -p "${dest}"
    dpkg-deb -x "${tmp}"/kubernetes-client_*.deb "${dest}" || die "cannot unpack kubernetes-client"
    rm -rf "${tmp}"
    "${dest}/usr/bin/kubectl" version --client >/dev/null 2>&1 || die "unpacked kubectl does not run"
}

# ---------------------------------------------------------------------------------------------------
# kubernetes-validate (PyPI): validates the chart's manifests against Kubernetes' schemas.

install_kubernetes_validate() {
    if python3 -c 'import kubernetes_validate, jsonschema, yaml' >/dev/null 2>&1; then
        log "kubernetes-validate already installed"
        return 0
    fi
    log "pip install kubernetes-validate"
    # Debian's python3 refuses pip installs outside a virtualenv (PEP 668) unless told otherwise;
    # this machine exists to run the tests, so the system interpreter gets it.
    python3 -m pip install -q kubernetes-validate ||
        python3 -m pip install -q --break-system-packages kubernetes-validate ||
        die "pip install kubernetes-validate failed"
    python3 -c 'import kubernetes_validate' || die "kubernetes-validate installed but cannot be imported"
}

main() {
    collect_missing_packages
    install_missing_packages
    unpack_old_kubectl
    install_kubernetes_validate
    start_etcd
    start_mariadb
    start_redis
    log "ready: etcd ${ETCD_CLIENT_URL}, MariaDB 127.0.0.1:${MARIADB_PORT} (root), Redis 127.0.0.1:${REDIS_PORT}; protoc, promtool, prometheus, kubectl, kubernetes-validate on PATH"
}

main "$@"
