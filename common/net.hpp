#pragma once
// Socket addresses and the few blocking-with-deadline socket calls every role needs.
// Nothing here allocates except the functions that return strings or vectors, which are
// only used at start-up, in the health checker and in logs, never per read.

#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/unique_fd.hpp"

namespace sluice::net {

// "host:port" as written in the config: a host name or IP literal (IPv6 inside brackets).
struct HostPort {
    std::string host;
    uint16_t port = 0;

    std::string to_string() const;  // brackets IPv6 literals again
    // to_string() with the host in lower case: two targets are the same target when their
    // canonical forms match.
    std::string canonical() const;
    bool operator==(const HostPort&) const = default;
};

// Parses "host:port" / "[v6]:port". Returns an empty string on success, else what is wrong.
// Port 0 is accepted only with `port_zero_ok` (an address to listen on: the kernel picks).
std::string parse_host_port(std::string_view text, HostPort& out, bool port_zero_ok = false);

// A resolved IPv4 or IPv6 socket address.
struct Endpoint {
    sockaddr_storage storage{};
    socklen_t length = 0;

    const sockaddr* addr() const { return reinterpret_cast<const sockaddr*>(&storage); }
    int family() const { return storage.ss_family; }
    bool valid() const { return length != 0; }
    std::string to_string() const;  // "1.2.3.4:80" or "[::1]:80"
    // The same into `out` (NUL-terminated, truncated to `size`), without allocating.
    void format(char* out, size_t size) const;
    bool operator==(const Endpoint& other) const;
};

// Resolves a host name or literal (getaddrinfo; blocking, so never on the connection path).
// Returns the addresses in resolver order, without duplicates; on failure an empty vector and
// the resolver's message in `error`.
std::vector<Endpoint> resolve(const HostPort& target, std::string& error);

// Creates a listening TCP socket (SO_REUSEADDR, close-on-exec, blocking) bound to `where`,
// which must be an IP literal or resolve to one. Throws std::system_error on failure.
UniqueFd listen_tcp(const HostPort& where, int backlog);

// An absolute point on the monotonic clock by which a blocking exchange must be done. Every
// wait below works to one deadline, so retries after EAGAIN never extend the total time.
using Deadline = std::chrono::steady_clock::time_point;

// The poll() timeout that ends at `deadline`, seen at `now`: whole milliseconds rounded up,
// 0 once the deadline has passed, at most INT_MAX (about 24.8 days; a caller with a farther
// deadline polls again). Saturating, so no deadline, however far or long past, can wrap to a
// negative (infinite) or a wrong finite timeout.
[[nodiscard]] int poll_timeout_ms(Deadline deadline,
                                  Deadline now = std::chrono::steady_clock::now());

// Waits until `fd` is ready for `events` (POLLIN, POLLOUT) or `deadline` passes; EINTR is
// retried. Returns 0 when ready, also on POLLHUP/POLLERR (the next call on the socket says
// what happened), ETIMEDOUT once the deadline has passed (a deadline already past still
// gets one look, so a socket that is ready is never reported late), or poll()'s errno.
// Never throws, never allocates.
[[nodiscard]] int wait_ready(int fd, short events, Deadline deadline);

// Sends every byte of `bytes` on `fd` before `deadline` (tpc's TcpStream::sendAll, with a
// deadline). Each send() is MSG_DONTWAIT | MSG_NOSIGNAL, so the deadline holds on blocking
// sockets too and a closed peer is an error, not a SIGPIPE. Returns 0 when all was sent,
// else the errno that stopped it: ETIMEDOUT (the peer did not read in time), EPIPE,
// ECONNRESET, ... Bytes sent before a failure stay sent. Never throws, never allocates.
[[nodiscard]] int send_all(int fd, std::span<const char> bytes, Deadline deadline);

// Connects a non-blocking socket to `to`, waiting at most `timeout`. On success returns the
// connected (still non-blocking) socket; on failure an invalid fd and errno set
// (ETIMEDOUT when the deadline passed).
UniqueFd connect_with_timeout(const Endpoint& to, std::chrono::milliseconds timeout);

// Makes the close() of a TCP socket send a reset instead of a FIN (SO_LINGER {1, 0}), so the
// peer cannot take a cut exchange for a complete one. Returns 0 or the errno. Linux sets it
// whatever the connection's state (a peer's reset does not make it fail).
int reset_on_close(int fd);

// The local or peer address of a socket, for logs and tests.
Endpoint local_endpoint(int fd);
Endpoint peer_endpoint(int fd);

}  // namespace sluice::net
