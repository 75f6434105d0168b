# Runs one amq command for ctest (see amq_cli_test in CMakeLists.txt):
#   cmake -DAMQ=<amq> -DARGS=<a|b|c> -DRC=<code> [-DREGEX=<re>] [-DJSON_KEY=<key>] -P check_cli.cmake
# Fails unless the exit code is RC, stdout+stderr match REGEX and, with JSON_KEY,
# stdout alone parses as JSON (an object, or an array of objects) holding JSON_KEY.
string(REPLACE "|" ";" args "${ARGS}")
execute_process(COMMAND "${AMQ}" ${args} RESULT_VARIABLE rc
                OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("amq ${args}\n--- stdout:\n${out}--- stderr:\n${err}--- exit code: ${rc}")
if(NOT rc STREQUAL RC)
  message(FATAL_ERROR "expected exit code ${RC}, got ${rc}")
endif()
if(REGEX AND NOT "${out}${err}" MATCHES "${REGEX}")
  message(FATAL_ERROR "output does not match '${REGEX}'")
endif()
if(JSON_KEY)
  string(JSON type ERROR_VARIABLE json_error TYPE "${out}")
  if(json_error)
    message(FATAL_ERROR "stdout is not JSON: ${json_error}")
  endif()
  if(type STREQUAL "ARRAY")
    string(JSON value ERROR_VARIABLE json_error GET "${out}" 0 ${JSON_KEY})
  else()
    string(JSON value ERROR_VARIABLE json_error GET "${out}" ${JSON_KEY})
  endif()
  if(json_error)
    message(FATAL_ERROR "JSON has no key '${JSON_KEY}': ${json_error}")
  endif()
endif()
