// net::send_all and net::wait_ready over socket pairs: partial writes completed, a peer that
// never reads runs into the deadline, a closed or reset peer is reported with its errno.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <future>
#include <string>

#include "common/net.hpp"

namespace sluice::net {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct Pair {
    UniqueFd a;
    UniqueFd b;
};

// A connected AF_UNIX stream pair; `a` non-blocking when asked.
Pair socket_pair(bool a_non_blocking = true) {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    Pair p{UniqueFd(fds[0]), UniqueFd(fds[1])};
    if (a_non_blocking) ::fcntl(p.a.get(), F_SETFL, ::fcntl(p.a.get(), F_GETFL) | O_NONBLOCK);
    return p;
}

// A connected loopback TCP pair: `a` the connecting side (non-blocking), `b` the accepted.
Pair tcp_pair() {
    UniqueFd listener = listen_tcp({"127.0.0.1", 0}, 1);
    UniqueFd a = connect_with_timeout(local_endpoint(listener.get()), 1s);
    EXPECT_TRUE(a.valid()) << std::strerror(errno);
    return {std::move(a), UniqueFd(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC))};
}

std::string pattern(size_t n) {
    std::string s(n, '\0');
    for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(i * 7 + i / 251);
    return s;
}

TEST(SendAll, CompletesPartialWritesWhileThePeerReads) {
    Pair p = socket_pair();
    const std::string data = pattern(4 << 20);  // far more than the socket buffers hold
    auto received = std::async(std::launch::async, [fd = p.b.get(), size = data.size()] {
        std::string out;
        char buffer[65536];
        while (out.size() < size) {
            const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
            if (n <= 0) break;
            out.append(buffer, static_cast<size_t>(n));
        }
        return out;
    });
    EXPECT_EQ(send_all(p.a.get(), data, Clock::now() + 10s), 0);
    EXPECT_TRUE(received.get() == data);
}

TEST(SendAll, StopsAtTheDeadlineWhenThePeerNeverReads) {
    for (const bool non_blocking : {true, false}) {  // MSG_DONTWAIT: blocking sockets too
        Pair p = socket_pair(non_blocking);
        const std::string data = pattern(8 << 20);
        const auto start = Clock::now();
        EXPECT_EQ(send_all(p.a.get(), data, start + 200ms), ETIMEDOUT);
        const auto took = Clock::now() - start;
        EXPECT_GE(took, 200ms);
        EXPECT_LT(took, 2s);
    }
}

TEST(SendAll, ReportsAClosedPeerAsEpipe) {
    Pair p = socket_pair();
    p.b.reset();
    EXPECT_EQ(send_all(p.a.get(), std::string("hello"), Clock::now() + 1s), EPIPE);
}

TEST(SendAll, ReportsAResetPeerAsEconnreset) {
    Pair p = tcp_pair();
    const linger reset_on_close{1, 0};
    ASSERT_EQ(
        ::setsockopt(p.b.get(), SOL_SOCKET, SO_LINGER, &reset_on_close, sizeof reset_on_close), 0);
    p.b.reset();  // the reset reaches a loopback peer before close() returns
    EXPECT_EQ(send_all(p.a.get(), std::string("hello"), Clock::now() + 1s), ECONNRESET);
    // Linux still accepts the options the worker sets on such a socket (the worker checks
    // them with SLUICE_CHECK, so a peer must not be able to make them fail).
    const int one = 1;
    EXPECT_EQ(::setsockopt(p.a.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one), 0);
    EXPECT_EQ(
        ::setsockopt(p.a.get(), SOL_SOCKET, SO_LINGER, &reset_on_close, sizeof reset_on_close), 0);
}

TEST(SendAll, NothingToSendIsDoneAtOnce) {
    Pair p = socket_pair();
    EXPECT_EQ(send_all(p.a.get(), std::string(), Clock::now() - 1s), 0);
}

TEST(WaitReady, ReturnsOnceTheSocketIsReady) {
    Pair p = socket_pair();
    auto writer = std::async(std::launch::async, [fd = p.b.get()] {
        std::this_thread::sleep_for(50ms);
        return ::send(fd, "x", 1, MSG_NOSIGNAL);
    });
    EXPECT_EQ(wait_ready(p.a.get(), POLLIN, Clock::now() + 5s), 0);
    EXPECT_EQ(writer.get(), 1);
}

TEST(WaitReady, TimesOutAtTheDeadline) {
    Pair p = socket_pair();
    const auto start = Clock::now();
    EXPECT_EQ(wait_ready(p.a.get(), POLLIN, start + 100ms), ETIMEDOUT);
    EXPECT_GE(Clock::now() - start, 100ms);
}

TEST(WaitReady, APastDeadlineStillSeesAReadySocket) {
    Pair p = socket_pair();
    ASSERT_EQ(::send(p.b.get(), "x", 1, MSG_NOSIGNAL), 1);
    EXPECT_EQ(wait_ready(p.a.get(), POLLIN, Clock::now() - 1s), 0);
    char c;
    ASSERT_EQ(::recv(p.a.get(), &c, 1, 0), 1);
    EXPECT_EQ(wait_ready(p.a.get(), POLLIN, Clock::now() - 1s), ETIMEDOUT);
}

// The far ends of time: a deadline long past (or the earliest one there is) is no time left,
// never a negative or wrapped-around timeout; one too far for a single poll() is the longest
// it takes.
TEST(PollTimeout, SaturatesAtBothEnds) {
    const Deadline now = Clock::now();
    EXPECT_EQ(poll_timeout_ms(now, now), 0);
    EXPECT_EQ(poll_timeout_ms(now - 1s, now), 0);
    EXPECT_EQ(poll_timeout_ms(Deadline::min(), now), 0);
    EXPECT_EQ(poll_timeout_ms(now + 1500us, now), 2) << "rounded up";
    EXPECT_EQ(poll_timeout_ms(now + 600h, now), INT_MAX) << "600 h is past 2^31 ms";
    EXPECT_EQ(poll_timeout_ms(now + std::chrono::milliseconds(INT_MAX), now), INT_MAX);
    EXPECT_EQ(poll_timeout_ms(now + std::chrono::milliseconds(INT_MAX - 1), now), INT_MAX - 1);
    EXPECT_EQ(poll_timeout_ms(Deadline::max(), now), INT_MAX);
}

TEST(WaitReady, TheEarliestDeadlineIsNotAnEndlessWait) {
    Pair p = socket_pair();
    EXPECT_EQ(wait_ready(p.a.get(), POLLIN, Deadline::min()), ETIMEDOUT);
}

TEST(WaitReady, TheLatestDeadlineStillSeesAReadySocket) {
    Pair p = socket_pair();
    ASSERT_EQ(::send(p.b.get(), "x", 1, MSG_NOSIGNAL), 1);
    EXPECT_EQ(wait_ready(p.a.get(), POLLIN, Deadline::max()), 0);
}

TEST(WaitReady, AHangUpCountsAsReady) {
    Pair p = socket_pair();
    p.b.reset();  // POLLHUP: the caller's next recv() sees the end
    EXPECT_EQ(wait_ready(p.a.get(), POLLIN, Clock::now() + 5s), 0);
}

TEST(ConnectWithTimeout, ReportsARefusalWithItsErrno) {
    Endpoint closed;
    {
        UniqueFd listener = listen_tcp({"127.0.0.1", 0}, 1);
        closed = local_endpoint(listener.get());
    }
    EXPECT_FALSE(connect_with_timeout(closed, 1s).valid());
    EXPECT_EQ(errno, ECONNREFUSED);
}

}  // namespace
}  // namespace sluice::net
