#include "protocol/time_format.hpp"

#include <chrono>

namespace bc::protocol {

std::int64_t now_unix_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

namespace {
void put2(char* p, unsigned v) {
  p[0] = static_cast<char>('0' + v / 10);
  p[1] = static_cast<char>('0' + v % 10);
}
}  // namespace

std::string format_rfc3339_ms(std::int64_t unix_ms) {
  using namespace std::chrono;
  const sys_time<milliseconds> tp{milliseconds(unix_ms)};
  const auto day = floor<days>(tp);
  const year_month_day ymd{day};
  const hh_mm_ss hms{tp - day};
  std::string out(24, '\0');
  char* p = out.data();
  const int y = static_cast<int>(ymd.year());
  put2(p, static_cast<unsigned>(y / 100));
  put2(p + 2, static_cast<unsigned>(y % 100));
  p[4] = '-';
  put2(p + 5, static_cast<unsigned>(ymd.month()));
  p[7] = '-';
  put2(p + 8, static_cast<unsigned>(ymd.day()));
  p[10] = 'T';
  put2(p + 11, static_cast<unsigned>(hms.hours().count()));
  p[13] = ':';
  put2(p + 14, static_cast<unsigned>(hms.minutes().count()));
  p[16] = ':';
  put2(p + 17, static_cast<unsigned>(hms.seconds().count()));
  p[19] = '.';
  const auto ms = static_cast<unsigned>(hms.subseconds().count());
  p[20] = static_cast<char>('0' + ms / 100);
  put2(p + 21, ms % 100);
  p[23] = 'Z';
  return out;
}

}  // namespace bc::protocol
