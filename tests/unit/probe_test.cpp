// health::probe's failures that are the checker's own: they carry local_errno, so that the
// checker keeps the target's verdict; the target's own failures do not.

#include "health/probe.hpp"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <string>

namespace sluice::health {
namespace {

net::Endpoint loopback(uint16_t port) {
    std::string error;
    auto list = net::resolve({"127.0.0.1", port}, error);
    EXPECT_EQ(list.size(), 1u) << error;
    return list.empty() ? net::Endpoint() : list.front();
}

// A loopback port nothing listens on: bound, never listening, so a connect is refused.
class RefusingPort {
public:
    RefusingPort() {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        net::Endpoint any = loopback(1);
        reinterpret_cast<sockaddr_in*>(&any.storage)->sin_port = 0;
        EXPECT_EQ(::bind(fd_, any.addr(), any.length), 0);
        const net::Endpoint bound = net::local_endpoint(fd_);
        port_ = ntohs(reinterpret_cast<const sockaddr_in*>(&bound.storage)->sin_port);
    }
    ~RefusingPort() { ::close(fd_); }
    RefusingPort(const RefusingPort&) = delete;
    RefusingPort& operator=(const RefusingPort&) = delete;
    uint16_t port() const { return port_; }

private:
    int fd_ = -1;
    uint16_t port_ = 0;
};

TEST(ProbeLocalFailure, ARefusalIsTheTargets) {
    RefusingPort refusing;
    TargetConfig target;
    const ProbeResult r = probe(loopback(refusing.port()), target);
    EXPECT_FALSE(r.healthy);
    EXPECT_EQ(r.reason, DownReason::refused);
    EXPECT_EQ(r.local_errno, 0);
}

TEST(ProbeLocalFailure, OutOfDescriptorsIsOurs) {
    RefusingPort refusing;
    TargetConfig target;
    rlimit saved{};
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
    // The lowest free descriptor becomes the limit: the probe's socket() gets EMFILE.
    const int lowest_free = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    ASSERT_GE(lowest_free, 0);
    ::close(lowest_free);
    rlimit low = saved;
    low.rlim_cur = static_cast<rlim_t>(lowest_free);
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
    const ProbeResult r = probe(loopback(refusing.port()), target);
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
    EXPECT_FALSE(r.healthy);
    EXPECT_EQ(r.local_errno, EMFILE);
    EXPECT_EQ(r.describe(), "cannot check: Too many open files");
}

}  // namespace
}  // namespace sluice::health
