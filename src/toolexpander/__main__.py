from toolexpander.cli import main

raise SystemExit(main())
