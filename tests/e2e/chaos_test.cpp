// Chaos: under steady traffic for a bounded time, random faults of every kind the processes
// must outlive: the checker and workers killed at any instant (so also mid-write of the
// shared segment), once every child at the same instant, reloads with valid and invalid
// files, targets restarted. About 40 s by default; SLUICE_CHAOS_SECONDS sets it. Afterwards
// the balancer must be as it was: every target healthy again, no connection counted as open,
// fds, threads and processes back to a fresh start's, and no client ever saw a corrupted
// reply.

#include <gtest/gtest.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <regex>

#include "sluice_fixture.hpp"

namespace sluice::test {
namespace {

int chaos_seconds() {
    const char* env = std::getenv("SLUICE_CHAOS_SECONDS");
    return env != nullptr && std::atoi(env) > 0 ? std::atoi(env) : 40;
}

// The pid of the health process last started, from the master's "started health process
// PID" lines.
pid_t checker_pid(const std::string& log) {
    static const std::regex started("started health process ([0-9]+)");
    pid_t pid = 0;
    for (auto it = std::sregex_iterator(log.begin(), log.end(), started);
         it != std::sregex_iterator(); ++it)
        pid = std::stoi((*it)[1].str());
    return pid;
}

// The sum of every sample of a Prometheus family in a /metrics body; -1 if it is absent.
long metric_sum(const std::string& body, const std::string& family) {
    long sum = -1;
    size_t at = 0;
    while ((at = body.find("\n" + family, at)) != std::string::npos) {
        at += family.size() + 1;
        if (body[at] != '{' && body[at] != ' ') continue;
        const size_t space = body.find(' ', body[at] == '{' ? body.find('}', at) : at);
        sum = std::max(sum, 0L) + std::strtol(body.c_str() + space + 1, nullptr, 10);
    }
    return sum;
}

class ChaosTest : public SluiceTest {
protected:
    // Waits until /status lists every configured target UP and /metrics counts no open
    // connection; the last /status body in `status`.
    bool settles(std::string& status) {
        return wait_until(
            [&] {
                const HttpReply s = admin("/status");
                status = s.body;
                if (s.status != 200 || s.body.find("\"DOWN\"") != std::string::npos) return false;
                if (count_of(s.body, "\"UP\"") < static_cast<int>(backends_.size())) return false;
                return metric_sum(admin("/metrics").body, "sluice_target_active_connections") == 0;
            },
            kPatience);
    }

    void kill_one(std::mt19937& random, int& kills) {
        const std::vector<pid_t> now = children_of(sluice_->pid());
        if (now.empty()) return;
        ::kill(now[random() % now.size()], SIGKILL);
        ++kills;
    }
};

TEST_F(ChaosTest, EverythingRecoversFromRandomKillsReloadsAndRestarts) {
    start_backends(3);
    extra_top_ = "drain_timeout = \"2s\"\nlog_level = \"notice\"\n";
    with_admin_ = true;
    start_sluice(2);
    const std::string expected = get().body;
    ASSERT_FALSE(expected.empty());
    std::string status;
    ASSERT_TRUE(settles(status)) << status;
    ASSERT_TRUE(wait_until([&] { return children_of(sluice_->pid()).size() == 3; }, kPatience));
    const long base_fds = children_fds();

    LoadGenerator load(port_, 3, 3s, expected);
    std::mt19937 random(static_cast<unsigned>(std::random_device{}()));
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(chaos_seconds());
    int kills = 0, checker_kills = 0, reloads = 0, bad_reloads = 0, restarts = 0;
    bool killed_all = false;
    const std::vector<std::vector<size_t>> sets = {{0, 1}, {1, 2}, {0, 2}, {0, 1, 2}};
    while (std::chrono::steady_clock::now() < end) {
        // Each fault once the traffic has moved on a little, so they land at random points
        // of the processes' work rather than in one burst.
        const long mark = load.ok() + load.failed();
        wait_until([&] { return load.ok() + load.failed() >= mark + 20; }, 5s);
        switch (random() % 6) {
            case 0: kill_one(random, kills); break;
            case 1:
                if (const pid_t checker = checker_pid(sluice_->log()); checker > 0) {
                    ::kill(checker, SIGKILL);
                    ++checker_kills;
                }
                break;
            case 2:
                reload(config_text(sets[random() % sets.size()]));
                ++reloads;
                break;
            case 3:
                reload("listen = \"127.0.0.1:0\"\n[[targets]]\naddress = \n", true);
                ++bad_reloads;
                break;
            case 4: {
                Backend& b = backends_[random() % backends_.size()];
                stop_backend(b);
                start_backend(b);
                ++restarts;
                break;
            }
            case 5:
                if (!killed_all) {
                    for (pid_t p : children_of(sluice_->pid())) ::kill(p, SIGKILL);
                    killed_all = true;
                }
                break;
        }
    }
    load.stop();
    reload(config_text());  // every target configured again
    std::printf(
        "[ measure  ] chaos %d s: %ld good replies, %ld failed, %ld corrupted; %d worker/child "
        "kills, %d checker kills, all children killed at once: %s, %d reloads, %d invalid "
        "reloads, %d target restarts\n",
        chaos_seconds(), load.ok(), load.failed(), load.corrupted(), kills, checker_kills,
        killed_all ? "yes" : "no", reloads, bad_reloads, restarts);

    EXPECT_EQ(load.corrupted(), 0) << "corrupted replies";
    EXPECT_GT(load.ok(), 100);
    EXPECT_TRUE(sluice_->running()) << sluice_->log();
    EXPECT_TRUE(settles(status)) << "not every target healthy, or connections still counted:\n"
                                 << status << "\n"
                                 << admin("/metrics").body;
    expect_children_back_to(3, base_fds);
    // Still serving, after all of it.
    EXPECT_EQ(get().body, expected);
}

}  // namespace
}  // namespace sluice::test
