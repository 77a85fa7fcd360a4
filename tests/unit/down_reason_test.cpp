// The one errno classification (common/shared_table.hpp) and the reasons a probe gives:
// the health checker and the workers name a failure the same way.

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <set>
#include <string>
#include <thread>

#include "common/shared_table.hpp"
#include "health/probe.hpp"

namespace sluice {
namespace {

using namespace std::chrono_literals;

TEST(ClassifyErrno, EveryTableEntryIsWhatClassifyReturns) {
    std::set<int> seen;
    for (const ErrnoClass& c : errno_classes()) {
        EXPECT_TRUE(seen.insert(c.err).second) << "errno " << c.err << " listed twice";
        const ErrnoClass got = classify_errno(c.err);
        EXPECT_EQ(got.reason, c.reason) << std::strerror(c.err);
        EXPECT_EQ(got.blames_target, c.blames_target) << std::strerror(c.err);
        // Only what a probe learns from the reply itself (or the checker from the resolver)
        // has other reasons; an errno never says "response timeout" or "bad status".
        EXPECT_TRUE(c.reason == DownReason::refused || c.reason == DownReason::connect_timeout ||
                    c.reason == DownReason::unreachable || c.reason == DownReason::reset ||
                    c.reason == DownReason::error)
            << std::strerror(c.err);
        // A plain `error` is never held against the target.
        if (c.reason == DownReason::error) {
            EXPECT_FALSE(c.blames_target) << std::strerror(c.err);
        }
    }
}

TEST(ClassifyErrno, TheCasesTheCheckerAndTheWorkersOnceDisagreedOn) {
    EXPECT_EQ(classify_errno(ECONNRESET).reason, DownReason::reset);
    EXPECT_TRUE(classify_errno(ECONNRESET).blames_target);
    EXPECT_EQ(classify_errno(EPIPE).reason, DownReason::reset);
    EXPECT_EQ(classify_errno(EHOSTDOWN).reason, DownReason::unreachable);
    EXPECT_TRUE(classify_errno(EHOSTDOWN).blames_target);
    EXPECT_EQ(classify_errno(ENETDOWN).reason, DownReason::unreachable);
    EXPECT_FALSE(classify_errno(ENETDOWN).blames_target);  // our own interface
    EXPECT_EQ(classify_errno(ETIMEDOUT).reason, DownReason::connect_timeout);
    EXPECT_EQ(classify_errno(ECONNREFUSED).reason, DownReason::refused);
}

TEST(ClassifyErrno, LocalShortagesAndUnknownErrnosDoNotBlameTheTarget) {
    for (int err : {EMFILE, ENFILE, ENOBUFS, ENOMEM, EADDRNOTAVAIL, EINVAL, 0, 100000}) {
        EXPECT_EQ(classify_errno(err).reason, DownReason::error) << err;
        EXPECT_FALSE(classify_errno(err).blames_target) << err;
    }
}

TEST(DownReasonName, TimeoutsSayWhichPhase) {
    EXPECT_STREQ(down_reason_name(DownReason::connect_timeout), "connect timeout");
    EXPECT_STREQ(down_reason_name(DownReason::response_timeout), "response timeout");
    EXPECT_STREQ(down_reason_name(DownReason::reset), "connection reset");
    // The stored numbers of the older reasons did not move.
    EXPECT_EQ(static_cast<uint32_t>(DownReason::connect_timeout), 2u);
    EXPECT_EQ(static_cast<uint32_t>(DownReason::pending), 9u);
}

// A probe against a loopback listener this test controls.
class Probe : public ::testing::Test {
protected:
    health::ProbeResult probe_http() {
        TargetConfig target;
        target.address = "test";
        target.health_check_endpoint = "/healthz";
        target.health_check.timeout = 300ms;
        return health::probe(net::local_endpoint(listener_.get()), target);
    }
    UniqueFd listener_ = net::listen_tcp({"127.0.0.1", 0}, 8);
};

TEST_F(Probe, ASilentTargetIsAResponseTimeout) {
    // The kernel completes the handshake from the backlog; nobody ever answers.
    const health::ProbeResult r = probe_http();
    EXPECT_FALSE(r.healthy);
    EXPECT_EQ(r.reason, DownReason::response_timeout) << r.describe();
}

TEST_F(Probe, AResetIsAReset) {
    std::thread target([&] {
        UniqueFd fd(::accept(listener_.get(), nullptr, nullptr));
        char buffer[512];
        (void)::recv(fd.get(), buffer, sizeof buffer, 0);  // the request
        const linger reset_on_close{1, 0};
        ::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &reset_on_close, sizeof reset_on_close);
    });
    const health::ProbeResult r = probe_http();
    target.join();
    EXPECT_EQ(r.reason, DownReason::reset) << r.describe();
}

TEST_F(Probe, ARefusalIsRefused) {
    const net::Endpoint closed = net::local_endpoint(listener_.get());
    listener_.reset();
    TargetConfig target;
    target.address = "test";
    const health::ProbeResult r = health::probe(closed, target);
    EXPECT_EQ(r.reason, DownReason::refused) << r.describe();
}

}  // namespace
}  // namespace sluice
