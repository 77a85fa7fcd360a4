#pragma once
// Rise/fall hysteresis for one address: a small pure state machine that says whether the
// state flipped. Unknown at first: the first result decides at once (a new address is
// checked before it gets traffic, without waiting for `rise` checks).

namespace sluice::health {

class HealthTracker {
public:
    enum class State { unknown, up, down };

    HealthTracker(int rise, int fall, State initial = State::unknown)
        : rise_(rise), fall_(fall), state_(initial) {}

    // Records one check. Returns true when the state changed (unknown -> up/down included).
    bool record(bool success) {
        if (state_ == State::unknown) {
            state_ = success ? State::up : State::down;
            streak_ = 0;
            return true;
        }
        if (success == (state_ == State::up)) {
            streak_ = 0;
            return false;
        }
        if (++streak_ < (state_ == State::up ? fall_ : rise_)) return false;
        state_ = success ? State::up : State::down;
        streak_ = 0;
        return true;
    }

    // Takes the state DOWN without counting checks (a worker saw a connect fail): coming
    // back then needs `rise` successes. Returns true when it was not DOWN already.
    bool force_down() {
        const bool changed = state_ != State::down;
        state_ = State::down;
        streak_ = 0;
        return changed;
    }

    State state() const { return state_; }
    bool up() const { return state_ == State::up; }

private:
    int rise_;
    int fall_;
    State state_;
    int streak_ = 0;  // consecutive results against the current state
};

}  // namespace sluice::health
