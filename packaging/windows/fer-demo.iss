; Inno Setup script: wraps the PyInstaller one-folder build (dist\fer-demo) into one setup .exe
; with a Start-menu entry and an uninstaller. Build on Windows, after
;   pip install -e ".[build]"   (pulls onnxruntime-directml through the environment marker)
;   pyinstaller --noconfirm build_installer.spec
;   "C:\Program Files (x86)\Inno Setup 6\ISCC.exe" packaging\windows\fer-demo.iss
; Output: dist\fer-demo-setup.exe. Nothing is installed outside {autopf}\FER demo and the
; user's Start menu; session logs go to the user data folder (platformdirs), never next to the app.
#define AppName "FER demo"
#define AppVersion "0.1.0"

[Setup]
AppId={{7E4C2B8A-3F1D-4C55-9B7E-FE2013DEMO01}
AppName={#AppName}
AppVersion={#AppVersion}
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
OutputDir=..\..\dist
OutputBaseFilename=fer-demo-setup
Compression=lzma2
SolidCompression=yes
ArchitecturesInstallIn64BitMode=x64compatible
PrivilegesRequiredOverridesAllowed=dialog

[Files]
Source: "..\..\dist\fer-demo\*"; DestDir: "{app}"; Flags: recursesubdirs ignoreversion

[Icons]
Name: "{group}\{#AppName}"; Filename: "{app}\fer-demo.exe"
Name: "{group}\Uninstall {#AppName}"; Filename: "{uninstallexe}"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\fer-demo.exe"; Tasks: desktopicon

[Tasks]
Name: "desktopicon"; Description: "Create a desktop icon"; Flags: unchecked

[Run]
Filename: "{app}\fer-demo.exe"; Parameters: "--self-test"; Flags: runhidden waituntilterminated; StatusMsg: "Checking the installation..."
Filename: "{app}\fer-demo.exe"; Description: "Start {#AppName}"; Flags: postinstall nowait skipifsilent
