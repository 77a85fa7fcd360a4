// Rise/fall hysteresis and expect_status as pure logic.

#include <gtest/gtest.h>

#include "conf/loader.hpp"
#include "health/tracker.hpp"

namespace sluice::health {
namespace {

using State = HealthTracker::State;

TEST(HealthTracker, FirstResultDecidesAtOnce) {
    HealthTracker up(3, 3);
    EXPECT_TRUE(up.record(true));
    EXPECT_EQ(up.state(), State::up);
    HealthTracker down(3, 3);
    EXPECT_TRUE(down.record(false));
    EXPECT_EQ(down.state(), State::down);
}

TEST(HealthTracker, FallNeedsThatManyFailuresInARow) {
    HealthTracker t(2, 3, State::up);
    EXPECT_FALSE(t.record(false));
    EXPECT_FALSE(t.record(false));
    EXPECT_FALSE(t.record(true));  // a success resets the streak
    EXPECT_FALSE(t.record(false));
    EXPECT_FALSE(t.record(false));
    EXPECT_TRUE(t.record(false));
    EXPECT_EQ(t.state(), State::down);
}

TEST(HealthTracker, RiseNeedsThatManySuccessesInARow) {
    HealthTracker t(2, 1, State::down);
    EXPECT_FALSE(t.record(true));
    EXPECT_FALSE(t.record(false));
    EXPECT_FALSE(t.record(true));
    EXPECT_TRUE(t.record(true));
    EXPECT_EQ(t.state(), State::up);
    EXPECT_TRUE(t.record(false));  // fall = 1
}

TEST(HealthTracker, SeedDefaultsFlipOnEveryChange) {
    HealthTracker t(1, 1, State::up);
    EXPECT_FALSE(t.record(true));
    EXPECT_TRUE(t.record(false));
    EXPECT_FALSE(t.record(false));
    EXPECT_TRUE(t.record(true));
}

TEST(HealthTracker, ForcedDownNeedsRiseToComeBack) {
    HealthTracker t(2, 5, State::up);
    EXPECT_TRUE(t.force_down());
    EXPECT_FALSE(t.force_down());
    EXPECT_FALSE(t.record(true));
    EXPECT_TRUE(t.record(true));
}

HealthCheckConfig expect(const std::string& value) {
    return parse_config(
               "[health_check]\nexpect_status = " + value + "\n[[targets]]\naddress = \"a:1\"\n",
               "t.toml")
        .health_check;
}

TEST(ExpectStatus, DefaultIsAny2xx) {
    const HealthCheckConfig c;
    EXPECT_TRUE(c.accepts(200));
    EXPECT_TRUE(c.accepts(299));
    EXPECT_FALSE(c.accepts(199));
    EXPECT_FALSE(c.accepts(300));
    EXPECT_FALSE(c.accepts(503));
}

TEST(ExpectStatus, CodesClassesAndRanges) {
    const auto c = expect(R"([200, "3xx", "401-403"])");
    for (int ok : {200, 300, 302, 399, 401, 402, 403}) EXPECT_TRUE(c.accepts(ok)) << ok;
    for (int bad : {201, 299, 400, 404, 500}) EXPECT_FALSE(c.accepts(bad)) << bad;
    EXPECT_TRUE(expect("\"204\"").accepts(204));
    EXPECT_FALSE(expect("\"204\"").accepts(200));
    EXPECT_TRUE(expect("418").accepts(418));
}

TEST(ExpectStatus, BadRulesAreConfigErrors) {
    for (const char* bad : {"\"2XX\"", "\"600\"", "\"299-200\"", "\"20\"", "[]", "true", "\"abc\"",
                            "\"200-\"", "99"}) {
        EXPECT_THROW(expect(bad), ConfigError) << bad;
    }
}

TEST(ExpectStatus, PerTargetOverridesInheritTheRest) {
    const Config c = parse_config(
        "[health_check]\ninterval = \"2s\"\nfall = 3\n"
        "[[targets]]\naddress = \"a:1\"\n"
        "[[targets]]\naddress = \"b:1\"\nhealth_check = { interval = \"250ms\", rise = 4 }\n",
        "t.toml");
    EXPECT_EQ(c.targets[0].health_check.interval, Millis(2000));
    EXPECT_EQ(c.targets[0].health_check.rise, 1);
    EXPECT_EQ(c.targets[1].health_check.interval, Millis(250));
    EXPECT_EQ(c.targets[1].health_check.rise, 4);
    EXPECT_EQ(c.targets[1].health_check.fall, 3);
    EXPECT_EQ(c.targets[1].health_check.timeout, Millis(1000));
}

}  // namespace
}  // namespace sluice::health
