#include "worker/connection.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "common/log.hpp"
#include "common/net.hpp"
#include "worker/proxy_protocol.hpp"
#include "worker/relay.hpp"
#include "worker/selection.hpp"

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

// Whether a failed connect says something about the target. This worker running out of
// descriptors, memory or local ports (EMFILE, ENFILE, ENOBUFS, ENOMEM, EADDRNOTAVAIL) does
// not: marking every target DOWN for it would turn a local shortage into an outage.
bool target_is_to_blame(int err) {
    switch (err) {
        case ECONNREFUSED:
        case ETIMEDOUT:
        case EHOSTUNREACH:
        case ENETUNREACH:
        case EHOSTDOWN:
        case ECONNRESET: return true;
        default: return false;
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

int idle_ms(const Config& config) {
    const auto ms = config.idle_timeout.count();
    return ms == 0 ? -1 : static_cast<int>(std::min<int64_t>(ms, INT32_MAX));
}

// How the connection ended, for the log line.
const char* end_name(const RelayResult& r) {
    switch (r.end) {
        case RelayEnd::completed:
            return r.client_finished_first ? "client_closed" : "target_closed";
        case RelayEnd::client_error:
        case RelayEnd::target_error: return "error";
        case RelayEnd::idle_timeout: return "timeout";
    }
    return "error";
}

double ms_between(std::chrono::steady_clock::time_point a,
                  std::chrono::steady_clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}

// The outcome of trying the candidates of one pick.
struct Attempt {
    UniqueFd target;
    int slot = -1;       // the slot connected to
    int last_errno = 0;  // of the last failed connect
    size_t at_cap = 0;   // candidates skipped because they were at max_connections
};

// Tries the candidates in turn. A candidate at its max_connections is skipped: its `active`
// count is reserved with one fetch_add before connecting and given back if over the cap,
// so the cap holds exactly across every worker. On success the slot stays counted in
// `active` (and in this worker's share) until release().
Attempt connect_first(const Candidates& candidates, const WorkerContext& context) {
    Attempt out;
    SharedTable& table = context.table;
    for (size_t attempt = 0;; ++attempt) {
        const int index = candidates.at(attempt);
        if (index < 0) return out;
        TargetSlot& slot = table.slots[index];
        const TargetConfig& target = context.config.targets[index / kAddressesPerTarget];
        const uint64_t before = slot.active.fetch_add(1, std::memory_order_relaxed);
        if (target.max_connections != 0 && before >= target.max_connections) {
            slot.active.fetch_sub(1, std::memory_order_relaxed);
            ++out.at_cap;
            continue;
        }
        net::Endpoint address;
        if (slot.load_address(address)) {
            out.target = net::connect_with_timeout(address, context.config.connect_timeout);
            if (out.target) {
                out.slot = index;
                table.worker_active[context.worker_slot][index].fetch_add(
                    1, std::memory_order_relaxed);
                return out;
            }
            out.last_errno = errno;
            if (target_is_to_blame(errno)) mark_down(slot, target, address, errno);
        }
        slot.active.fetch_sub(1, std::memory_order_relaxed);
    }
}

void release(const WorkerContext& context, int index) {
    context.table.worker_active[context.worker_slot][index].fetch_sub(1, std::memory_order_relaxed);
    context.table.slots[index].active.fetch_sub(1, std::memory_order_relaxed);
}

// Picks and connects; while every candidate is at its max_connections, tries again every
// 5 ms until queue_timeout (the waiting client holds only this thread).
Attempt pick_and_connect(const WorkerContext& context, Candidates& candidates) {
    thread_local Picker picker(context.config);
    const auto deadline = std::chrono::steady_clock::now() + context.config.queue_timeout;
    for (;;) {
        picker.pick(context.table, monotonic_ms(), candidates);
        Attempt attempt = connect_first(candidates, context);
        if (attempt.target || attempt.at_cap == 0 || std::chrono::steady_clock::now() >= deadline)
            return attempt;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

// Sends the PROXY protocol header the target asked for, before any byte of the client's.
bool send_proxy_header(int client, const net::Endpoint& peer, const TargetConfig& target, int fd,
                       Millis timeout) {
    if (target.send_proxy == ProxyProtocol::none) return true;
    const net::Endpoint destination = net::local_endpoint(client);
    char header[kMaxProxyHeader];
    const size_t length = target.send_proxy == ProxyProtocol::v1
                              ? proxy_header_v1(peer, destination, header)
                              : proxy_header_v2(peer, destination, header);
    size_t sent = 0;
    pollfd pfd{fd, POLLOUT, 0};
    while (sent < length) {
        const ssize_t n = ::send(fd, header + sent, length - sent, MSG_NOSIGNAL);
        if (n > 0)
            sent += static_cast<size_t>(n);
        else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (::poll(&pfd, 1, static_cast<int>(timeout.count())) <= 0) return false;
        } else {
            return false;
        }
    }
    return true;
}

}  // namespace

void reply_unavailable(int client, char* scratch, size_t scratch_size) {
    const size_t length = sizeof kServiceUnavailable - 1;
    size_t sent = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    pollfd pfd{client, POLLOUT, 0};
    while (sent < length && std::chrono::steady_clock::now() < deadline) {
        const ssize_t n = ::send(client, kServiceUnavailable + sent, length - sent, MSG_NOSIGNAL);
        if (n > 0)
            sent += static_cast<size_t>(n);
        else if (n < 0 && (errno == EAGAIN || errno == EINTR))
            ::poll(&pfd, 1, 100);
        else
            return;
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

void repair_active_counts(const WorkerContext& context) {
    auto& mine = context.table.worker_active[context.worker_slot];
    for (size_t i = 0; i < kMaxSlots; ++i) {
        const uint32_t left = mine[i].exchange(0);
        if (left > 0) context.table.slots[i].active.fetch_sub(left);
    }
}

void serve_connection(int client, const net::Endpoint& peer, const WorkerContext& context,
                      ThreadBuffers& buffers) {
    const auto accepted = std::chrono::steady_clock::now();
    SharedTable& table = context.table;
    table.connections.fetch_add(1, std::memory_order_relaxed);
    Candidates candidates;
    Attempt attempt = pick_and_connect(context, candidates);
    char client_text[64];
    if (!attempt.target) {
        const bool limited = attempt.at_cap > 0;
        (limited ? table.rejected_limit : table.rejected_no_target)
            .fetch_add(1, std::memory_order_relaxed);
        const char* end = limited                           ? "limit"
                          : candidates.count == 0           ? "no_target"
                          : attempt.last_errno == ETIMEDOUT ? "timeout"
                                                            : "refused_all";
        const bool reply = context.config.on_no_target == NoTargetReply::http_503;
        if (log::enabled(log::Level::info)) {
            peer.format(client_text, sizeof client_text);
            LOG_INFO(
                "conn client=%s target=- duration_ms=%.3f bytes_to_target=0 "
                "bytes_to_client=%zu end=%s",
                client_text, ms_between(accepted, std::chrono::steady_clock::now()),
                reply ? sizeof kServiceUnavailable - 1 : 0, end);
        }
        if (reply) reply_unavailable(client, buffers.to_client, sizeof buffers.to_client);
        return;
    }
    const auto connected = std::chrono::steady_clock::now();
    const int index = attempt.slot;
    TargetSlot& slot = table.slots[index];
    const TargetConfig& target = context.config.targets[index / kAddressesPerTarget];
    slot.connections.fetch_add(1, std::memory_order_relaxed);
    set_no_delay(client);
    set_no_delay(attempt.target.get());
    RelayResult result;
    result.end = RelayEnd::target_error;
    if (send_proxy_header(client, peer, target, attempt.target.get(),
                          context.config.connect_timeout)) {
        result =
            relay(client, attempt.target.get(), buffers.to_target, buffers.to_client,
                  ThreadBuffers::kSize, ByteCounters{&slot.bytes_to_target, &slot.bytes_to_client},
                  idle_ms(context.config));
    }
    release(context, index);
    if (log::enabled(log::Level::info)) {
        char target_text[64];
        peer.format(client_text, sizeof client_text);
        net::Endpoint address;
        slot.load_address(address);
        address.format(target_text, sizeof target_text);
        const auto ended = std::chrono::steady_clock::now();
        LOG_INFO(
            "conn client=%s target=%s address=%s connect_ms=%.3f duration_ms=%.3f "
            "bytes_to_target=%llu bytes_to_client=%llu end=%s",
            client_text, target.address.c_str(), target_text, ms_between(accepted, connected),
            ms_between(accepted, ended), static_cast<unsigned long long>(result.bytes_to_target),
            static_cast<unsigned long long>(result.bytes_to_client), end_name(result));
    }
}

}  // namespace sluice::worker
