#include "health/probe.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>

#include "health/http_reply.hpp"

namespace sluice::health {
namespace {

using Clock = std::chrono::steady_clock;

DownReason reason_for_errno(int err) {
    switch (err) {
        case ECONNREFUSED: return DownReason::refused;
        case ETIMEDOUT: return DownReason::timeout;
        case ENETUNREACH:
        case EHOSTUNREACH:
        case EHOSTDOWN:
        case ENETDOWN: return DownReason::unreachable;
        case ECONNRESET:
        case EPIPE: return DownReason::reset;
        default: return DownReason::error;
    }
}

ProbeResult failed(DownReason reason) {
    ProbeResult r;
    r.reason = reason;
    return r;
}

// Waits until `fd` is ready for `events` or the deadline passes. False on timeout (errno set).
bool wait_for(int fd, short events, Clock::time_point deadline) {
    for (;;) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) {
            errno = ETIMEDOUT;
            return false;
        }
        pollfd pfd{fd, events, 0};
        const int rc = ::poll(&pfd, 1, static_cast<int>(left));
        if (rc > 0) return true;
        if (rc < 0 && errno != EINTR) return false;
    }
}

}  // namespace

std::string ProbeResult::describe() const {
    if (healthy) return status ? "status " + std::to_string(status) : "connected";
    if (reason == DownReason::bad_status) return "status " + std::to_string(status);
    return down_reason_name(reason);
}

ProbeResult probe(const net::Endpoint& address, const TargetConfig& target) {
    const Millis timeout = target.health_check.timeout;
    const std::string& path = target.health_check_endpoint;
    const std::string& host_header = target.address;
    const auto deadline = Clock::now() + timeout;
    UniqueFd fd = net::connect_with_timeout(address, timeout);
    if (!fd) return failed(reason_for_errno(errno));
    if (path.empty()) {
        ProbeResult ok;
        ok.healthy = true;
        return ok;
    }

    const std::string request = "GET " + path + " HTTP/1.1\r\nHost: " + host_header +
                                "\r\nUser-Agent: sluice-health-check\r\nAccept: */*\r\n"
                                "Connection: close\r\n\r\n";
    size_t sent = 0;
    while (sent < request.size()) {
        const ssize_t n =
            ::send(fd.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
        if (n > 0) {
            sent += static_cast<size_t>(n);
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (!wait_for(fd.get(), POLLOUT, deadline)) return failed(reason_for_errno(errno));
        } else {
            return failed(reason_for_errno(errno));
        }
    }

    char reply[1100];
    size_t have = 0;
    for (;;) {
        int status = 0;
        switch (parse_status_line(std::string_view(reply, have), status)) {
            case StatusLine::ok: {
                ProbeResult r;
                r.status = status;
                r.healthy = target.health_check.accepts(status);
                r.reason = r.healthy ? DownReason::none : DownReason::bad_status;
                return r;
            }
            case StatusLine::malformed: return failed(DownReason::malformed);
            case StatusLine::incomplete: break;
        }
        if (have == sizeof reply) return failed(DownReason::malformed);
        const ssize_t n = ::recv(fd.get(), reply + have, sizeof reply - have, 0);
        if (n > 0) {
            have += static_cast<size_t>(n);
        } else if (n == 0) {
            return failed(DownReason::malformed);  // closed before a full status line
        } else if (errno == EAGAIN || errno == EINTR) {
            if (!wait_for(fd.get(), POLLIN, deadline)) return failed(reason_for_errno(errno));
        } else {
            return failed(reason_for_errno(errno));
        }
    }
}

}  // namespace sluice::health
