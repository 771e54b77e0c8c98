from flowhooks.cli import main

main()
