# cmake -P helper: OUTPUT = contents of PROLOGUE followed by contents of MODULE.
file(READ "${PROLOGUE}" prologue)
file(READ "${MODULE}" module)
file(WRITE "${OUTPUT}" "${prologue}${module}")
