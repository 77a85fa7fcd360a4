#include "health/probe.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "health/http_reply.hpp"

namespace sluice::health {
namespace {

using Clock = std::chrono::steady_clock;

ProbeResult failed(DownReason reason) {
    ProbeResult r;
    r.reason = reason;
    return r;
}

// A socket call failed with `err`: the target's failure, or this process's own (then the
// result carries `local_errno` and no verdict).
ProbeResult failed_with(int err) {
    const ErrnoClass failure = classify_errno(err);
    ProbeResult r = failed(failure.reason);
    if (!failure.blames_target) r.local_errno = err;
    return r;
}

// A failure after the connect: running out of time now means the reply was late.
ProbeResult failed_exchange(int err) {
    return err == ETIMEDOUT ? failed(DownReason::response_timeout) : failed_with(err);
}

// Room for the longest status line parse_status_line() accepts (1024 bytes) and a little
// more, so a longer one is seen as malformed rather than as incomplete for ever.
constexpr size_t kReplyBytes = 1100;

// Reads the reply until its status line is complete, and judges it.
ProbeResult read_status(int fd, const TargetConfig& target, net::Deadline deadline) {
    char reply[kReplyBytes];
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
        const ssize_t n = ::recv(fd, reply + have, sizeof reply - have, 0);
        if (n > 0) {
            have += static_cast<size_t>(n);
        } else if (n == 0) {
            return failed(DownReason::malformed);  // closed before a full status line
        } else if (errno == EAGAIN || errno == EINTR) {
            if (const int err = net::wait_ready(fd, POLLIN, deadline); err != 0)
                return failed_exchange(err);
        } else {
            return failed_exchange(errno);
        }
    }
}

}  // namespace

std::string ProbeResult::describe() const {
    if (local_errno != 0) return std::string("cannot check: ") + std::strerror(local_errno);
    if (healthy) return status ? "status " + std::to_string(status) : "connected";
    if (reason == DownReason::bad_status) return "status " + std::to_string(status);
    return down_reason_name(reason);
}

ProbeResult probe(const net::Endpoint& address, const TargetConfig& target) {
    const Millis timeout = target.health_check.timeout;
    const std::string& path = target.health_check_endpoint;
    const std::string& host_header = target.address;
    const net::Deadline deadline = Clock::now() + timeout;
    UniqueFd fd = net::connect_with_timeout(address, timeout);
    if (!fd) return failed_with(errno);  // ETIMEDOUT: connect_timeout
    if (path.empty()) {
        ProbeResult ok;
        ok.healthy = true;
        return ok;
    }

    const std::string request = "GET " + path + " HTTP/1.1\r\nHost: " + host_header +
                                "\r\nUser-Agent: sluice-health-check\r\nAccept: */*\r\n"
                                "Connection: close\r\n\r\n";
    if (const int err = net::send_all(fd.get(), request, deadline); err != 0)
        return failed_exchange(err);

    return read_status(fd.get(), target, deadline);
}

}  // namespace sluice::health
