// A catalogue of malformed or invalid config files (tests/configs/bad/*.toml). Each must make
// `sluice --check` exit 1 with a FILE:LINE: message, and the same file sent to a running
// sluice with SIGHUP must leave the running config serving (generation 1, same processes).
//
// Each file's first line says what its error must be: `# expect: LINE: substring` (an empty
// substring: any message, as long as it names the line). Files that cannot hold a comment
// (empty, binary garbage) are in kSideTable. Huge files (5 MB) are generated here.

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "harness.hpp"
#include "sluice_fixture.hpp"

namespace sluice::test {
namespace {

namespace fs = std::filesystem;

struct BadConfig {
    std::string name;     // file name, for messages
    std::string content;  // the file's bytes
    int line = 0;         // the line the error must name
    std::string expect;   // a substring of the error ("" = any)
};

struct SideEntry {
    const char* name;
    int line;
    const char* expect;
};

constexpr SideEntry kSideTable[] = {
    {"empty.toml", 1, "no targets"},
    {"binary_garbage.toml", 1, "TOML syntax error"},
};

const std::string kCatalogue = SLUICE_SOURCE_DIR "/tests/configs/bad";

// Reads `# expect: LINE: substring` from the first line; false if it is not there.
bool parse_expectation(const std::string& content, int& line, std::string& expect) {
    const std::string prefix = "# expect: ";
    if (content.compare(0, prefix.size(), prefix) != 0) return false;
    const std::string first = content.substr(0, content.find('\n'));
    const auto colon = first.find(':', prefix.size());
    if (colon == std::string::npos) return false;
    line = std::atoi(first.c_str() + prefix.size());
    expect = first.substr(colon + 1);
    expect.erase(0, expect.find_first_not_of(' '));
    expect.erase(expect.find_last_not_of(" \r") + 1);
    return line > 0;
}

std::vector<BadConfig> catalogue() {
    std::vector<BadConfig> out;
    for (const auto& entry : fs::directory_iterator(kCatalogue)) {
        if (entry.path().extension() != ".toml") continue;
        BadConfig bad;
        bad.name = entry.path().filename().string();
        bad.content = read_file(entry.path().string());
        if (!parse_expectation(bad.content, bad.line, bad.expect)) {
            const auto* side = std::find_if(std::begin(kSideTable), std::end(kSideTable),
                                            [&](const SideEntry& e) { return bad.name == e.name; });
            if (side == std::end(kSideTable)) {
                ADD_FAILURE() << bad.name << " has no '# expect: LINE: substring' first line "
                              << "and no entry in kSideTable";
                continue;
            }
            bad.line = side->line;
            bad.expect = side->expect;
        }
        out.push_back(std::move(bad));
    }
    std::sort(out.begin(), out.end(),
              [](const BadConfig& a, const BadConfig& b) { return a.name < b.name; });
    return out;
}

// A 5 MB file: comment lines (one of them 1 MB long), then an unknown key on its last line.
BadConfig huge_config() {
    BadConfig bad;
    bad.name = "huge.toml (generated, 5 MB)";
    std::string& text = bad.content;
    text = "listen = \"127.0.0.1:8080\"\n";
    int lines = 1;
    while (text.size() < 2'000'000) {
        text += "# padding " + std::to_string(lines) +
                ": a huge file must load, or fail, in bounded time and memory\n";
        ++lines;
    }
    text += "# " + std::string(1'000'000, 'v') + "\n";
    ++lines;
    while (text.size() < 5'000'000) {
        text += "# more padding " + std::to_string(lines) + "\n";
        ++lines;
    }
    text += "[[targets]]\naddress = \"127.0.0.1:8001\"\nbogus = 1\n";
    bad.line = lines + 3;
    bad.expect = "unknown key \"bogus\" in [[targets]] #1";
    return bad;
}

// Bounded: 90 s leaves room for a sanitizer build parsing the 5 MB file.
void check_one(const std::string& path, const BadConfig& bad) {
    SCOPED_TRACE(bad.name);
    const CommandResult result = run_command({SLUICE_BIN, "--check", "--config", path}, 90s);
    EXPECT_EQ(result.exit_code, 1)
        << (result.exit_code == -1 ? "(killed by a signal, or hung)\n" : "")
        << result.output.substr(0, 2000);
    const std::string where = path + ":" + std::to_string(bad.line) + ":";
    EXPECT_NE(result.output.find(where), std::string::npos) << "expected " << where << " in:\n"
                                                            << result.output.substr(0, 2000);
    EXPECT_NE(result.output.find(bad.expect), std::string::npos)
        << "expected \"" << bad.expect << "\" in:\n"
        << result.output.substr(0, 2000);
    EXPECT_NE(result.output.rfind("OK\n", 0), 0u) << "accepted";
}

TEST(BadConfig, CatalogueHasTwentyFiveFilesOrMore) { EXPECT_GE(catalogue().size(), 25u); }

TEST(BadConfig, CheckRejectsEachWithFileAndLine) {
    const auto files = catalogue();
    ASSERT_GE(files.size(), 25u);
    for (const BadConfig& bad : files) check_one(kCatalogue + "/" + bad.name, bad);
    std::cout << "[ measure  ] bad configs: " << files.size() << " files checked\n";
}

TEST(BadConfig, CheckRejectsAHugeFileWithFileAndLine) {
    TempDir dir;
    const BadConfig bad = huge_config();
    const auto started = std::chrono::steady_clock::now();
    check_one(dir.write("huge.toml", bad.content), bad);
    std::cout << "[ measure  ] a 5 MB config rejected in "
              << std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count()
              << " s\n";
}

// toml11 appends its own report without a final newline; the shell prompt (or the next
// message) must not end up on the last line of the error.
TEST(BadConfig, CheckOutputEndsWithANewline) {
    const auto files = catalogue();
    for (const BadConfig& bad : files) {
        const CommandResult result =
            run_command({SLUICE_BIN, "--check", "--config", kCatalogue + "/" + bad.name}, 30s);
        if (result.exit_code != 1) continue;  // a crash: CheckRejectsEachWithFileAndLine says so
        EXPECT_TRUE(!result.output.empty() && result.output.back() == '\n')
            << bad.name << ": the output does not end with a newline:\n"
            << result.output.substr(result.output.size() > 300 ? result.output.size() - 300 : 0);
    }
}

// The same files through SIGHUP: each reload fails with the same FILE:LINE error, the running
// generation keeps serving, no new generation starts, no process is replaced, and the master
// holds no more descriptors at the end than at the start.
class BadConfigReload : public SluiceTest {
protected:
    enum class Outcome { refused, died, stuck };

    // Writes `content` to the config file and sends SIGHUP; waits (at most 20 s, room for a
    // sanitizer build to parse the 5 MB file) until the failure is logged or the master is
    // gone. Like reload(text, true), but it stops waiting when the master dies, and a
    // master that does neither (a sanitizer still writing a crash report) is killed.
    Outcome reload_bad(const std::string& content) {
        const int before = log_count("reload failed");
        dir_.write("sluice.toml", content);
        sluice_->signal(SIGHUP);
        wait_until(
            [&] { return log_count("reload failed") > before || !pid_alive(sluice_->pid()); }, 20s);
        if (log_count("reload failed") > before) return Outcome::refused;
        if (pid_alive(sluice_->pid())) {
            sluice_->signal(SIGKILL);
            sluice_->wait_exit(5s);
            return Outcome::stuck;
        }
        return Outcome::died;
    }

    // A new sluice after a crash, to carry on with the rest of the catalogue.
    void restart() {
        sluice_.reset();
        start_sluice(2);
        ASSERT_TRUE(wait_until([&] { return children_of(sluice_->pid()).size() == 3; }, 5s));
        children_ = children_of(sluice_->pid());
        std::sort(children_.begin(), children_.end());
        master_fds_ = fds_of(sluice_->pid());
    }

    static long fds_of(pid_t pid) {
        long n = 0;
        std::error_code ec;
        for (auto it = fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
             it != fs::directory_iterator(); ++it)
            ++n;
        return n;
    }

    std::vector<pid_t> children_;
    long master_fds_ = 0;
};

TEST_F(BadConfigReload, EachBadFileLeavesTheRunningConfigServing) {
    auto files = catalogue();
    ASSERT_GE(files.size(), 25u);
    files.push_back(huge_config());
    start_backends(2);
    start_sluice(2);
    ASSERT_TRUE(wait_until([&] { return children_of(sluice_->pid()).size() == 3; }, 5s));
    children_ = children_of(sluice_->pid());
    std::sort(children_.begin(), children_.end());
    master_fds_ = fds_of(sluice_->pid());
    int refused = 0;
    for (const BadConfig& bad : files) {
        SCOPED_TRACE(bad.name);
        const Outcome outcome = reload_bad(bad.content);
        if (outcome != Outcome::refused) {
            const std::string log = sluice_->log();
            ADD_FAILURE() << "the master "
                          << (outcome == Outcome::died
                                  ? "died"
                                  : "neither refused the file nor died within 20 s")
                          << " on SIGHUP with " << bad.name << " (wait status "
                          << sluice_->wait_exit(5s) << "); log tail:\n"
                          << log.substr(log.size() > 2000 ? log.size() - 2000 : 0);
            restart();
            continue;
        }
        ++refused;
        const std::string log = sluice_->log();
        const std::string failure = log.substr(log.rfind("reload failed"));
        const std::string where = config_path_ + ":" + std::to_string(bad.line) + ":";
        EXPECT_NE(failure.find(where), std::string::npos) << "expected " << where << " in:\n"
                                                          << failure.substr(0, 2000);
        EXPECT_NE(failure.find(bad.expect), std::string::npos)
            << "expected \"" << bad.expect << "\" in:\n"
            << failure.substr(0, 2000);
        const HttpReply reply = get();
        EXPECT_EQ(reply.status, 200) << reply.raw;
        EXPECT_EQ(log_count("reload done"), 0) << "a new generation started";
        auto now = children_of(sluice_->pid());
        std::sort(now.begin(), now.end());
        EXPECT_EQ(now, children_) << "the processes changed";
    }
    std::cout << "[ measure  ] bad configs through SIGHUP: " << refused << "/" << files.size()
              << " refused with the old config serving\n";
    EXPECT_EQ(fds_of(sluice_->pid()), master_fds_) << "the master leaks descriptors on reload";
    // And a good file still reloads afterwards.
    reload(config_text());
    EXPECT_EQ(get().status, 200);
}

}  // namespace
}  // namespace sluice::test
