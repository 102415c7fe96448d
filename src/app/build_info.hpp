#pragma once
// What this binary was built from, for the broadcaster_build_info series. The version is BROADCASTER_VERSION.

namespace bc::app {

// The git commit the sources were at when built (cmake/build_commit.cmake), or "unknown".
extern const char* const build_commit;

}  // namespace bc::app
