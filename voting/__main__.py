from voting.cli import main

raise SystemExit(main())
