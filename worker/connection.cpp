#include "worker/connection.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "common/log.hpp"
#include "common/net.hpp"
#include "common/selection.hpp"
#include "worker/relay.hpp"

namespace sluice::worker {
namespace {

void set_no_delay(int fd) {
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

DownReason reason_for_connect_errno(int err) {
    switch (err) {
        case ECONNREFUSED: return DownReason::refused;
        case ETIMEDOUT: return DownReason::timeout;
        case ENETUNREACH:
        case EHOSTUNREACH: return DownReason::unreachable;
        default: return DownReason::error;
    }
}

// Passive health: a target this worker could not connect to is taken out of rotation at
// once for every worker; the health checker brings it back when a check passes.
void mark_down(TargetSlot& slot, const TargetConfig& target, const net::Endpoint& address,
               int err) {
    const DownReason reason = reason_for_connect_errno(err);
    slot.reason.store(static_cast<uint32_t>(reason));
    slot.passive_failures.fetch_add(1);
    if (slot.up.exchange(0) == 1) {
        LOG_WARN("target %s DOWN: %s (%s), seen by a worker; trying the next healthy target",
                 target.address.c_str(),
                 reason == DownReason::error ? std::strerror(err) : down_reason_name(reason),
                 address.to_string().c_str());
    }
}

// Connects to the candidates in turn; returns the first socket that connects.
UniqueFd connect_first(const Candidates& candidates, const Config& config, SharedTable& table) {
    for (size_t attempt = 0;; ++attempt) {
        const int index = candidates.at(attempt);
        if (index < 0) return UniqueFd();
        TargetSlot& slot = table.slots[index];
        net::Endpoint address;
        if (!slot.load_address(address)) continue;
        UniqueFd target = net::connect_with_timeout(address, config.connect_timeout);
        if (target) return target;
        mark_down(slot, config.targets[index / kAddressesPerTarget], address, errno);
    }
}

}  // namespace

void reply_unavailable(int client, char* scratch, size_t scratch_size) {
    const size_t length = sizeof kServiceUnavailable - 1;
    size_t sent = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    pollfd pfd{client, POLLOUT, 0};
    while (sent < length && std::chrono::steady_clock::now() < deadline) {
        const ssize_t n = ::send(client, kServiceUnavailable + sent, length - sent, MSG_NOSIGNAL);
        if (n > 0) sent += static_cast<size_t>(n);
        else if (n < 0 && (errno == EAGAIN || errno == EINTR)) ::poll(&pfd, 1, 100);
        else return;
    }
    ::shutdown(client, SHUT_WR);
    // Lingering close: read and drop what the client still sends, until it closes, for at
    // most a second and a bounded number of bytes.
    pfd.events = POLLIN;
    size_t drained = 0;
    while (drained < 256 * 1024) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                              deadline - std::chrono::steady_clock::now())
                              .count();
        if (left <= 0 || ::poll(&pfd, 1, static_cast<int>(left)) <= 0) return;
        const ssize_t n = ::recv(client, scratch, scratch_size, 0);
        if (n <= 0 && !(n < 0 && (errno == EAGAIN || errno == EINTR))) return;
        if (n > 0) drained += static_cast<size_t>(n);
    }
}

void serve_connection(int client, const Config& config, SharedTable& table,
                      ThreadBuffers& buffers) {
    Candidates candidates;
    take_candidates(table, candidates);
    UniqueFd target = connect_first(candidates, config, table);
    if (!target) {
        if (candidates.count == 0) LOG_WARN("No healthy targets: replying 503");
        else LOG_WARN("every healthy target refused: replying 503");
        reply_unavailable(client, buffers.to_client, sizeof buffers.to_client);
        return;
    }
    set_no_delay(client);
    set_no_delay(target.get());
    relay(client, target.get(), buffers.to_target, buffers.to_client, ThreadBuffers::kSize);
}

}  // namespace sluice::worker
