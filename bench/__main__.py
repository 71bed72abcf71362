from bench.cli import program

program()
