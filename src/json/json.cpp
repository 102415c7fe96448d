// The one translation unit that compiles Boost.JSON (header-only mode), so no other file pays for it.
#include <boost/json/src.hpp>
