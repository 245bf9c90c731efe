# /// farm
# name = "hello"
# description = "Print a greeting: the floor of what running anything costs"
# packages = []
# repeatable = true
# ///
print("hello from the sandbox")
