from clive.cli import main

raise SystemExit(main())
