// The seed post's demo, end to end: real sluice, real spells-api processes, loopback only.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>

#include "sluice_fixture.hpp"

namespace sluice::test {
namespace {

using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

long long ms_since(Clock::time_point start) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

TEST_F(SluiceTest, RoundRobinIsExactAcrossTwoWorkers) {
    start_backends(2);
    start_sluice(2);
    const auto served = spread(100);
    EXPECT_EQ(served.count(""), 0u) << "failed requests";
    EXPECT_EQ(served.at("api-1"), 50);
    EXPECT_EQ(served.at("api-2"), 50);
}

TEST_F(SluiceTest, FailsOverWithoutFailedRequestsAndRecovers) {
    start_backends(2);
    start_sluice(2);
    const auto killed = Clock::now();
    stop_backend(backends_[1]);
    // From the moment the target dies, no client request may fail: a refused connect is
    // retried on the next healthy target. The seed's count line says when it is out.
    int failed = 0;
    const bool marked_down = wait_until(
        [&] {
            failed += get().status != 200;
            return sluice_->log().find("Healthy targets: 1") != std::string::npos;
        },
        kHealthInterval + kHealthTimeout + 2s);
    ASSERT_TRUE(marked_down) << sluice_->log();
    const long long failover_ms = ms_since(killed);
    const auto after = spread(20);
    EXPECT_EQ(failed, 0);
    EXPECT_EQ(after.size(), 1u);
    EXPECT_EQ(after.count("api-1") ? after.at("api-1") : 0, 20);

    const auto restarted = Clock::now();
    start_backend(backends_[1]);
    ASSERT_TRUE(wait_until([&] { return get().instance == "api-2"; }, kPatience)) << sluice_->log();
    const long long recover_ms = ms_since(restarted);
    const auto both = spread(10);
    EXPECT_EQ(both.count("api-1") ? both.at("api-1") : 0, 5);
    EXPECT_EQ(both.count("api-2") ? both.at("api-2") : 0, 5);
    std::printf(
        "[ measure  ] marked DOWN %lld ms after the kill (interval %lld ms, timeout %lld "
        "ms); back in rotation %lld ms after restart\n",
        failover_ms, static_cast<long long>(kHealthInterval.count()),
        static_cast<long long>(kHealthTimeout.count()), recover_ms);
}

TEST_F(SluiceTest, AllTargetsDownGivesTheSeeds503) {
    start_backends(2);
    start_sluice(1);
    stop_backend(backends_[0]);
    stop_backend(backends_[1]);
    HttpReply reply;
    ASSERT_TRUE(wait_until(
        [&] {
            reply = get();
            return reply.status == 503;
        },
        kPatience));
    EXPECT_EQ(reply.raw,
              "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 19\r\n\r\nService Unavailable");
    EXPECT_TRUE(wait_until(
        [&] { return sluice_->log().find("Healthy targets: 0") != std::string::npos; }, kPatience));
}

TEST_F(SluiceTest, PostLandsOnOneInstanceOnly) {
    start_backends(2);
    start_sluice(2);
    const std::string spell = R"({"id": 3, "name": "Alohomora", "description": "Unlocking Charm"})";
    const HttpReply posted = http_request(port_, "POST", "/api/spells", spell);
    ASSERT_EQ(posted.status, 201) << posted.raw;
    ASSERT_FALSE(posted.instance.empty());
    // The next two GETs go one to each instance: only the one that took the POST knows it.
    for (int i = 0; i < 2; ++i) {
        const HttpReply listed = get();
        ASSERT_EQ(listed.status, 200);
        const bool has_spell = listed.body.find("Alohomora") != std::string::npos;
        EXPECT_EQ(has_spell, listed.instance == posted.instance)
            << listed.instance << ": " << listed.body;
    }
}

TEST_F(SluiceTest, CheckFlagAcceptsAGoodConfigAndRejectsABadOne) {
    start_backends(1);
    const std::string good = dir_.write("good.toml", config_text());
    const auto ok = run_command({SLUICE_BIN, "--check", "--config", good});
    EXPECT_EQ(ok.exit_code, 0) << ok.output;
    EXPECT_THAT(ok.output, HasSubstr("OK"));

    const std::string bad = dir_.write(
        "bad.toml", "listen = \"127.0.0.1:1\"\n\n[[targets]]\naddress = \"api:99999\"\n");
    const auto checked = run_command({SLUICE_BIN, "--check", "--config", bad});
    EXPECT_EQ(checked.exit_code, 1);
    EXPECT_THAT(checked.output, HasSubstr(bad + ":4:"));
    EXPECT_THAT(checked.output, HasSubstr("out of range"));
    // Without --check the same config stops sluice before it forks anything.
    const auto started = run_command({SLUICE_BIN, "--config", bad, "--workers", "1"});
    EXPECT_EQ(started.exit_code, 1);
    EXPECT_THAT(started.output, HasSubstr(bad + ":4:"));
}

}  // namespace
}  // namespace sluice::test
