// Health checks against targets that misbehave on cue, passive mark-down, and names that
// resolve to several addresses, to changing ones, or to none.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

#include "scripted_server.hpp"
#include "sluice_fixture.hpp"

namespace sluice::test {
namespace {

using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

constexpr int kFall = 2;
// The misbehaving target's own check timeout: below the interval, as usually configured, so
// that its checks keep their schedule and the bound below holds.
constexpr auto kFaultTimeout = 150ms;
// Beyond a detection bound derived from the config: what a sanitizer build on two busy cores
// may add (scheduling, slow probes). The bound itself is printed with each measure.
constexpr auto kDetectionSlack = 10s;

// How a health check endpoint misbehaves once the test says so.
enum class Fault { hang, status_500, garbage, close_mid_reply, slow_but_in_time };

struct FaultCase {
    Fault fault;
    const char* reason;  // what the DOWN line must say; "" for a target that stays UP
    const char* name;
};

void PrintTo(const FaultCase& c, std::ostream* os) { *os << c.name; }

class MisbehavingTarget : public SluiceTest, public ::testing::WithParamInterface<FaultCase> {
protected:
    std::atomic<bool> faulty_{false};
    std::unique_ptr<ScriptedServer> server_;

    void SetUp() override {
        server_ = std::make_unique<ScriptedServer>([this](int fd, const std::string& path) {
            if (path != "/healthz" || !faulty_) {
                return ScriptedServer::send_all(fd, ScriptedServer::reply(200, "ok", "scripted"));
            }
            switch (GetParam().fault) {
                case Fault::hang: return server_->hang(fd);
                case Fault::status_500:
                    return ScriptedServer::send_all(fd, ScriptedServer::reply(500, "no", "x"));
                case Fault::garbage:
                    return ScriptedServer::send_all(fd, "SSH-2.0-OpenSSH_9.2\r\n\r\n");
                case Fault::close_mid_reply: return ScriptedServer::send_all(fd, "HTTP/1.1 2");
                case Fault::slow_but_in_time:
                    std::this_thread::sleep_for(kFaultTimeout / 2);  // the target's pace
                    return ScriptedServer::send_all(fd, ScriptedServer::reply(200, "ok", "x"));
            }
        });
    }
};

TEST_P(MisbehavingTarget, IsDetectedWithItsReason) {
    start_backends(1);
    extra_targets_ = "\n[[targets]]\naddress = \"127.0.0.1:" + std::to_string(server_->port()) +
                     "\"\nhealth_check_endpoint = \"/healthz\"\nhealth_check = { fall = " +
                     std::to_string(kFall) + ", timeout = \"" +
                     std::to_string(kFaultTimeout.count()) + "ms\" }\n";
    start_sluice(1);
    const int checks_before = server_->requests();
    const auto turned_bad = Clock::now();
    faulty_ = true;
    const FaultCase& c = GetParam();
    if (*c.reason == '\0') {
        // Stays UP: wait for several checks to have happened, then look for no DOWN.
        ASSERT_TRUE(wait_until([&] { return server_->requests() >= checks_before + 2 * kFall + 2; },
                               kPatience));
        EXPECT_EQ(log_count("DOWN"), 0) << sluice_->log();
        return;
    }
    // At least one line: the checker's, and a worker may log its own passive mark-down too.
    const std::string expected = "DOWN: " + std::string(c.reason);
    const auto bound = kHealthInterval * 11 / 10 * kFall + kFaultTimeout;
    ASSERT_TRUE(wait_until([&] { return log_count(expected) >= 1; }, bound + kDetectionSlack))
        << sluice_->log();
    const auto detected =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - turned_bad);
    std::printf(
        "[ measure  ] %-16s detected in %4lld ms (bound: interval x fall + timeout = "
        "%lld ms)\n",
        c.name, static_cast<long long>(detected.count()), static_cast<long long>(bound.count()));
    // Traffic moves to the healthy target.
    ASSERT_TRUE(wait_until([&] { return spread(4)["scripted"] == 0; }, kPatience));
}

INSTANTIATE_TEST_SUITE_P(Faults, MisbehavingTarget,
                         ::testing::Values(FaultCase{Fault::hang, "response timeout", "timeout"},
                                           FaultCase{Fault::status_500, "status 500", "status 500"},
                                           FaultCase{Fault::garbage, "malformed reply", "garbage"},
                                           FaultCase{Fault::close_mid_reply, "malformed reply",
                                                     "close mid-reply"},
                                           FaultCase{Fault::slow_but_in_time, "", "slow in time"}),
                         [](const auto& param_info) {
                             std::string name = param_info.param.name;
                             for (char& ch : name) {
                                 if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                             }
                             return name;
                         });

// A target where nothing listens is DOWN with the reason "connection refused", and one that
// goes away is detected within the bound the config gives. Counted as "at least one line":
// a worker's passive mark-down may log one beside the checker's. The target that goes away
// may also be seen as "connection reset", when a check was in flight as it died: both are
// true reasons, and which one comes is a race.
TEST_F(SluiceTest, RefusingTargetIsDetectedWithItsReason) {
    start_backends(2);
    const Backend& never = add_backend("never");  // reserved, never started: nothing listens
    const std::string never_address = "127.0.0.1:" + std::to_string(never.port);
    start_sluice(1);
    const auto bound = kHealthInterval * 11 / 10 + kHealthTimeout;
    ASSERT_TRUE(
        wait_until([&] { return log_count(never_address + " DOWN: connection refused") >= 1; },
                   bound + kDetectionSlack))
        << sluice_->log();

    const std::string address = "127.0.0.1:" + std::to_string(backends_[1].port);
    const auto killed = Clock::now();
    stop_backend(backends_[1]);
    ASSERT_TRUE(wait_until(
        [&] {
            return log_count(address + " DOWN: connection refused") +
                       log_count(address + " DOWN: connection reset") >=
                   1;
        },
        bound + kDetectionSlack))
        << sluice_->log();
    const auto detected =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - killed);
    std::printf("[ measure  ] %-16s detected in %4lld ms (bound %lld ms)\n", "refused",
                static_cast<long long>(detected.count()), static_cast<long long>(bound.count()));
}

TEST_F(SluiceTest, HangingTargetDoesNotDelayTheOthers) {
    ScriptedServer hung([&](int fd, const std::string&) { hung.hang(fd); });
    start_backends(1);
    // A long timeout: checks of the hung target take 20 s each, far more than the refused
    // target's detection needs even on a loaded machine.
    extra_targets_ = "\n[[targets]]\naddress = \"127.0.0.1:" + std::to_string(hung.port()) +
                     "\"\nhealth_check_endpoint = \"/healthz\"\n"
                     "health_check = { timeout = \"20s\" }\n";
    start_sluice(1);
    ASSERT_TRUE(wait_until([&] { return hung.requests() > 0; }, kPatience));
    const std::string address = "127.0.0.1:" + std::to_string(backends_[0].port);
    const auto killed = Clock::now();
    stop_backend(backends_[0]);
    // The checker's own line (a worker may also have seen the refusal), with any reason: a
    // check in flight as the target died ends as reset or as a malformed (cut) reply.
    const auto checker_saw_it = [&] {
        const std::string log = sluice_->log();
        const std::string down = address + " DOWN: ";
        for (size_t at = log.find(down); at != std::string::npos; at = log.find(down, at + 1)) {
            const size_t newline = log.rfind('\n', at);
            const size_t start = newline == std::string::npos ? 0 : newline + 1;
            if (log.substr(start, at - start).find("health[") != std::string::npos) return true;
        }
        return false;
    };
    ASSERT_TRUE(wait_until(checker_saw_it, kPatience)) << sluice_->log();
    const auto detected =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - killed);
    EXPECT_LT(detected, 10s) << "waited for the hung target's 20 s check";
}

TEST_F(SluiceTest, PassiveMarkDownLosesNoConnection) {
    start_backends(2);
    // Checks every 5 s: the workers' own connect failures must keep clients whole.
    interval_ = 5s;
    start_sluice(2);
    {
        LoadGenerator warm(port_, 2);
        ASSERT_TRUE(wait_until([&] { return warm.ok() > 100; }, kPatience));
    }
    // Killed between two requests, so that no request is in flight on it: every failure
    // after this would be a new connection lost.
    stop_backend(backends_[1]);
    LoadGenerator load(port_, 2);
    ASSERT_TRUE(wait_until([&] { return load.ok() > 300; }, kPatience));
    load.stop();
    EXPECT_EQ(load.failed(), 0) << load.last_failure();
    // It was taken out, and by one worker at most for all of them: a worker's failed
    // connect usually comes first, but a check in flight when the target died may have
    // marked it DOWN before any worker saw it (then no worker logs a mark-down).
    EXPECT_GE(log_count(" DOWN: "), 1) << sluice_->log();
    EXPECT_LE(log_count("seen by a worker"), 1) << sluice_->log();
}

TEST_F(SluiceTest, NameWithSeveralAddressesBecomesSeveralTargetsAndFollowsChanges) {
    // One name, svc, for backends on 127.0.0.1, 127.0.0.2 and later 127.0.0.3, same port.
    uint16_t port = 0;
    for (int i = 1; i <= 3; ++i) {
        Backend& b = add_backend("api-" + std::to_string(i), "127.0.0." + std::to_string(i), port);
        port = b.port;
        b.in_config = false;  // the config names only svc
    }
    start_backend(backends_[0]);
    start_backend(backends_[1]);
    extra_targets_ = "\n[[targets]]\naddress = \"svc:" + std::to_string(port) +
                     "\"\nhealth_check_endpoint = \"/healthz\"\n";
    if (!start_sluice_with_hosts(2, "127.0.0.1 svc\n127.0.0.2 svc\n")) return;
    auto served = spread(20);
    EXPECT_EQ(served["api-1"], 10);
    EXPECT_EQ(served["api-2"], 10);

    // The name moves: .1 goes away, .3 comes.
    start_backend(backends_[2]);
    dir_.write("hosts", "127.0.0.2 svc\n127.0.0.3 svc\n");
    ASSERT_TRUE(wait_until(
        [&] {
            return log_count("127.0.0.3:" + std::to_string(port) + " added") >= 1 &&
                   log_count("127.0.0.1:" + std::to_string(port) + " removed") >= 1;
        },
        kHealthInterval * 3 + kDetectionSlack))
        << sluice_->log();
    ASSERT_TRUE(wait_until([&] { return get().instance == "api-3"; }, kPatience));
    served = spread(20);
    EXPECT_EQ(served["api-1"], 0);
    EXPECT_EQ(served["api-2"], 10);
    EXPECT_EQ(served["api-3"], 10);
}

TEST_F(SluiceTest, UnresolvableNameIsNotFatal) {
    start_backends(1);
    extra_targets_ =
        "\n[[targets]]\naddress = \"not-yet-there:8001\"\n"
        "health_check_endpoint = \"/healthz\"\n";
    if (!start_sluice_with_hosts(1, "127.0.0.1 localhost\n")) return;
    EXPECT_EQ(spread(10)["api-1"], 10);
    EXPECT_THAT(sluice_->log(), HasSubstr("not-yet-there:8001 does not resolve yet"));
    EXPECT_TRUE(sluice_->running());
}

}  // namespace
}  // namespace sluice::test
